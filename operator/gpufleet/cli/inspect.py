"""`gpufleet status` and `gpufleet explain`: what the operator reports, as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.cli._output import print_result, table
from gpufleet.cli.common import KubeconfigOpt, console, out


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)
    app.command("explain")(explain_command)


def _custom(kubeconfig: Path | None) -> Any:
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)
    except Exception as exc:
        console.print(
            f"[red]error:[/red] cannot load a kubeconfig ({exc}); pass --kubeconfig or set KUBECONFIG"
        )
        raise typer.Exit(1) from exc
    return client.CustomObjectsApi(api)


def _list(custom: Any, plural: str) -> list[dict[str, Any]]:
    from kubernetes.client.rest import ApiException

    try:
        return list(custom.list_cluster_custom_object(GROUP, VERSION, plural).get("items", []))
    except ApiException as exc:
        console.print(
            f"[red]error:[/red] listing {plural}: {exc.reason}. Are gpufleet's CRDs installed (make crds; kubectl apply -f crds/)?"
        )
        raise typer.Exit(1) from exc


def status_command(
    kubeconfig: KubeconfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Overview of sites, pools, queues and workloads, as the operator reports them."""
    custom = _custom(kubeconfig)
    data = {p: _list(custom, p) for p in ("sites", "gpupools", "queues", "workloads")}
    print_result(
        out,
        data,
        as_json,
        lambda: [
            site_table(data["sites"]),
            pool_table(data["gpupools"]),
            queue_table(data["queues"]),
            workload_table(data["workloads"]),
        ],
    )


def _or_unknown(values: dict[str, Any], key: str) -> str:
    """The value as text, or '?' where the status has none yet."""
    return str(values.get(key, "?"))


def site_table(sites: list[dict[str, Any]]) -> Table:
    """Sites as the API returns them: where each is, its connection and what it holds."""
    t = table(
        "sites",
        "site",
        "type",
        "jurisdiction",
        "connection",
        "schedulable",
        "power kW (budget)",
        "capacity",
    )
    for s in sites:
        st, sp = s.get("status") or {}, s["spec"]
        conn = st.get("connection") or {}
        cap = ", ".join(
            f"{c['allocated']}/{c['capacity']} {c['acceleratorClass']}"
            for c in st.get("capacity") or []
        )
        t.add_row(
            s["metadata"]["name"],
            sp["type"],
            sp["jurisdiction"],
            f"{conn.get('state', '?')} ({conn.get('reason', '')})",
            str(sp.get("schedulable", True)),
            f"{st.get('powerInUseKw', 0)} ({sp.get('powerBudgetKw', '∞')})",
            cap or "-",
        )
    return t


def pool_table(pools: list[dict[str, Any]]) -> Table:
    """GpuPools as the API returns them: nodes ready and accelerators ('?': no status yet)."""
    t = table(
        "pools",
        "pool",
        "site",
        "class",
        "nodes ready",
        "capacity",
        "allocated",
        "free",
        "fragmentation",
    )
    for p in pools:
        st, sp = p.get("status") or {}, p["spec"]
        t.add_row(
            p["metadata"]["name"],
            sp["site"],
            sp["acceleratorClass"],
            f"{_or_unknown(st, 'nodesReady')}/{_or_unknown(st, 'nodesTotal')}",
            _or_unknown(st, "capacity"),
            _or_unknown(st, "allocated"),
            _or_unknown(st, "free"),
            _or_unknown(st, "fragmentation"),
        )
    return t


def queue_table(queues: list[dict[str, Any]]) -> Table:
    """Queues as the API returns them: their totals over all classes ('?': no status yet)."""
    t = table(
        "queues",
        "queue",
        "parent",
        "deserved",
        "fair share",
        "allocated",
        "pending",
        "admitted",
        "waiting",
    )
    for q in queues:
        st = q.get("status") or {}
        tot = st.get("totals") or {}
        t.add_row(
            q["metadata"]["name"],
            q["spec"].get("parent") or "",
            _or_unknown(tot, "deserved"),
            _or_unknown(tot, "fairShare"),
            _or_unknown(tot, "allocated"),
            _or_unknown(tot, "pending"),
            _or_unknown(st, "admittedWorkloads"),
            _or_unknown(st, "pendingWorkloads"),
        )
    return t


def workload_table(workloads: list[dict[str, Any]]) -> Table:
    """Workloads as the API returns them, by namespace and name: where each runs, or the
    rules of its first three verdicts."""
    t = table("workloads", "workload", "queue", "size", "phase", "site / pool", "why")
    for w in sorted(workloads, key=lambda w: (w["metadata"]["namespace"], w["metadata"]["name"])):
        st, sp = w.get("status") or {}, w["spec"]
        placement = st.get("placement") or {}
        where = f"{placement.get('site')}/{placement.get('pool')}" if placement else "-"
        verdicts = st.get("verdicts") or []
        why = "; ".join(f"{v.get('site') or 'fleet'}: {v['rule']}" for v in verdicts[:3])
        size = f"{sp.get('replicas', 1)}×{sp.get('acceleratorsPerReplica', 1)} {'/'.join(sp.get('acceleratorClasses', []))}"
        t.add_row(
            f"{w['metadata']['namespace']}/{w['metadata']['name']}",
            sp["queue"],
            size,
            st.get("phase", "Pending"),
            where,
            why,
        )
    return t


def explain_command(
    workload: Annotated[str, typer.Argument(help="NAMESPACE/NAME or NAME (with --namespace).")],
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    kubeconfig: KubeconfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Why a workload runs where it runs, or, per site, why it does not run yet."""
    ns, name = workload.split("/", 1) if "/" in workload else (namespace, workload)
    obj = _get_workload(_custom(kubeconfig), ns, name)
    status = obj.get("status") or {}
    if as_json:
        out.print_json(json.dumps(_explanation(f"{ns}/{name}", status)))
        return
    phase = status.get("phase", "Pending")
    out.print(f"[bold]{ns}/{name}[/bold] in queue [bold]{obj['spec']['queue']}[/bold]: {phase}")
    placement = status.get("placement")
    if placement:
        out.print(placement_line(placement))
    if status.get("queuePosition"):
        out.print(f"position in its queue: {status['queuePosition']}")
    verdicts = status.get("verdicts") or []
    if verdicts:
        out.print(verdict_table(verdicts))
    for c in status.get("conditions") or []:
        out.print(f"[dim]{c['type']}={c['status']} {c['reason']}: {c.get('message', '')}[/dim]")


def _get_workload(custom: Any, ns: str, name: str) -> dict[str, Any]:
    from kubernetes.client.rest import ApiException

    try:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, "workloads", name
        )
    except ApiException as exc:
        console.print(
            f"[red]error:[/red] Workload {ns}/{name}: {exc.reason}. List them with 'kubectl get workloads -A'."
        )
        raise typer.Exit(1) from exc
    return obj


def _explanation(key: str, status: dict[str, Any]) -> dict[str, Any]:
    """What `explain --json` prints."""
    return {
        "workload": key,
        "phase": status.get("phase", "Pending"),
        "placement": status.get("placement"),
        "verdicts": status.get("verdicts", []),
        "queuePosition": status.get("queuePosition"),
    }


def placement_line(placement: dict[str, Any]) -> str:
    """Where a placed workload runs: site, pool, epoch and its first eight nodes."""
    nodes = sorted({r["node"] for r in placement.get("replicas", [])})
    return (
        f"placed at site [green]{placement['site']}[/green], pool {placement['pool']}, epoch {placement['epoch']}, "
        f"{len(placement.get('replicas', []))} replica(s) on {len(nodes)} node(s): {', '.join(nodes[:8])}{' …' if len(nodes) > 8 else ''}"
    )


def verdict_table(verdicts: list[dict[str, Any]]) -> Table:
    t = table("per-site verdicts", "site", "rule", "why", "nearest change")
    for v in verdicts:
        t.add_row(v.get("site") or "(fleet)", v["rule"], v["message"], v.get("nearestChange") or "")
    return t
