"""`gpufleet status` and `gpufleet explain`: what the operator reports, as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.api.v1alpha1 import GROUP, VERSION
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
    if as_json:
        out.print_json(json.dumps(data))
        return
    t = Table(title="sites")
    for c in (
        "site",
        "type",
        "jurisdiction",
        "connection",
        "schedulable",
        "power kW (budget)",
        "capacity",
    ):
        t.add_column(c)
    for s in data["sites"]:
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
    out.print(t)
    t = Table(title="pools")
    for c in (
        "pool",
        "site",
        "class",
        "nodes ready",
        "capacity",
        "allocated",
        "free",
        "fragmentation",
    ):
        t.add_column(c)
    for p in data["gpupools"]:
        st, sp = p.get("status") or {}, p["spec"]
        t.add_row(
            p["metadata"]["name"],
            sp["site"],
            sp["acceleratorClass"],
            f"{st.get('nodesReady', '?')}/{st.get('nodesTotal', '?')}",
            str(st.get("capacity", "?")),
            str(st.get("allocated", "?")),
            str(st.get("free", "?")),
            str(st.get("fragmentation", "?")),
        )
    out.print(t)
    t = Table(title="queues")
    for c in (
        "queue",
        "parent",
        "deserved",
        "fair share",
        "allocated",
        "pending",
        "admitted",
        "waiting",
    ):
        t.add_column(c)
    for q in data["queues"]:
        st = q.get("status") or {}
        tot = st.get("totals") or {}
        t.add_row(
            q["metadata"]["name"],
            q["spec"].get("parent") or "",
            str(tot.get("deserved", "?")),
            str(tot.get("fairShare", "?")),
            str(tot.get("allocated", "?")),
            str(tot.get("pending", "?")),
            str(st.get("admittedWorkloads", "?")),
            str(st.get("pendingWorkloads", "?")),
        )
    out.print(t)
    out.print(workload_table(data["workloads"]))


def workload_table(workloads: list[dict[str, Any]]) -> Table:
    t = Table(title="workloads")
    for c in ("workload", "queue", "size", "phase", "site / pool", "why"):
        t.add_column(c)
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
    from kubernetes.client.rest import ApiException

    ns, name = workload.split("/", 1) if "/" in workload else (namespace, workload)
    custom = _custom(kubeconfig)
    try:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "workloads", name)
    except ApiException as exc:
        console.print(
            f"[red]error:[/red] Workload {ns}/{name}: {exc.reason}. List them with 'kubectl get workloads -A'."
        )
        raise typer.Exit(1) from exc
    status = obj.get("status") or {}
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "workload": f"{ns}/{name}",
                    "phase": status.get("phase", "Pending"),
                    "placement": status.get("placement"),
                    "verdicts": status.get("verdicts", []),
                    "queuePosition": status.get("queuePosition"),
                }
            )
        )
        return
    phase = status.get("phase", "Pending")
    out.print(f"[bold]{ns}/{name}[/bold] in queue [bold]{obj['spec']['queue']}[/bold]: {phase}")
    placement = status.get("placement")
    if placement:
        nodes = sorted({r["node"] for r in placement.get("replicas", [])})
        out.print(
            f"placed at site [green]{placement['site']}[/green], pool {placement['pool']}, epoch {placement['epoch']}, "
            f"{len(placement.get('replicas', []))} replica(s) on {len(nodes)} node(s): {', '.join(nodes[:8])}{' …' if len(nodes) > 8 else ''}"
        )
    if status.get("queuePosition"):
        out.print(f"position in its queue: {status['queuePosition']}")
    verdicts = status.get("verdicts") or []
    if verdicts:
        t = Table(title="per-site verdicts")
        for c in ("site", "rule", "why", "nearest change"):
            t.add_column(c)
        for v in verdicts:
            t.add_row(
                v.get("site") or "(fleet)", v["rule"], v["message"], v.get("nearestChange") or ""
            )
        out.print(t)
    for c in status.get("conditions") or []:
        out.print(f"[dim]{c['type']}={c['status']} {c['reason']}: {c.get('message', '')}[/dim]")
