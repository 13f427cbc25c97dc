"""`gpufleet status` and `gpufleet explain`, run as a person would, against the dev fleet
with the operator running: the tables and the JSON carry the real sites, pools, queues and
workloads, and a waiting workload's explanation names the rule at every site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from cli.tables import rows
from e2e.operator_harness import Fleet, OperatorProcess, queue_obj, wait_for, workload_obj
from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.dev.nodes import DEFAULT_FLEET
from gpufleet.fleetfile import load_fleet

H100 = "nvidia-h100"


def gpufleet(fleet: Fleet, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The installed command line, wide enough that no table cell wraps."""
    result = subprocess.run(
        [sys.executable, "-m", "gpufleet.cli", *args, "--kubeconfig", str(fleet.hub.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        "/".join(filter(None, (i["metadata"].get("namespace"), i["metadata"]["name"]))): i
        for i in items
    }


def test_status_and_explain_show_the_fleet_as_the_operator_reports_it(
    fleet: Fleet, operator: OperatorProcess, team: str
) -> None:
    dev = load_fleet(DEFAULT_FLEET)
    sites = {c.site.name: c.site for c in dev.clusters}
    pools = {g.name: (c.site.name, g) for c in dev.clusters for g in c.node_groups}
    groups = {c.site.name: c.node_groups for c in dev.clusters}
    queue = f"q-{team}"
    fleet.apply(queue_obj(queue, [team], [{"acceleratorClass": H100, "deserved": 16}]))
    try:
        fleet.apply(
            workload_obj(team, "fits", queue, gpus=8, classes=(H100,)),
            # No site is in France: it waits, and every site says why.
            workload_obj(team, "nowhere", queue, gpus=8, residency={"jurisdictions": ["FR"]}),
        )
        running = fleet.wait_phase(team, "fits", {"Running"}, timeout=90)
        waiting = wait_for(
            "a verdict per site for the workload that cannot run",
            lambda: (
                (w := fleet.workload(team, "nowhere"))
                and len((w.get("status") or {}).get("verdicts") or []) == len(sites)
                and w
            ),
        )

        def queue_status() -> tuple[Any, Any]:
            st = fleet.queue(queue).get("status") or {}
            return (st.get("totals") or {}).get("allocated"), st.get("pendingWorkloads")

        wait_for("the queue's status to count both workloads", lambda: queue_status() == (8, 1))

        def pool_status(name: str) -> dict[str, Any]:
            pool = fleet.custom.get_cluster_custom_object(GROUP, VERSION, "gpupools", name)
            return dict(pool.get("status") or {})

        wait_for("every pool's status", lambda: all(pool_status(p).get("capacity") for p in pools))

        def site_reported(name: str) -> bool:
            st = fleet.site(name).get("status") or {}
            classes = {c["acceleratorClass"] for c in st.get("capacity") or []}
            return (st.get("connection") or {}).get("state") == "Connected" and classes == {
                g.accelerator_class for g in groups[name]
            }

        wait_for("every site's status", lambda: all(site_reported(s) for s in sites))

        # -- status --json: the API's objects, all of them -----------------------------
        data = json.loads(gpufleet(fleet, "status", "--json").stdout)
        assert set(data) == {"sites", "gpupools", "queues", "workloads"}
        assert set(by_name(data["sites"])) == set(sites)
        assert set(by_name(data["gpupools"])) == set(pools)
        assert queue in by_name(data["queues"])
        listed = by_name(data["workloads"])
        assert listed[f"{team}/fits"]["status"]["placement"] == running["status"]["placement"]
        assert listed[f"{team}/nowhere"]["status"]["verdicts"] == waiting["status"]["verdicts"]
        for name, site in sites.items():
            assert by_name(data["sites"])[name]["spec"]["jurisdiction"] == site.jurisdiction

        # -- status: the tables -----------------------------------------------------------
        text = gpufleet(fleet, "status").stdout
        site_rows = {r[0]: r for r in rows(text, "sites")}
        assert set(site_rows) == set(sites)
        for name, site in sites.items():
            assert site_rows[name][2] == site.jurisdiction
            assert site_rows[name][3].startswith("Connected ("), site_rows[name]
            # allocated/capacity per class: the site's pools, summed.
            for cls in {g.accelerator_class for g in groups[name]}:
                capacity = sum(
                    g.count * g.accelerators_per_node
                    for g in groups[name]
                    if g.accelerator_class == cls
                )
                assert f"/{capacity} {cls}" in site_rows[name][6], site_rows[name]
        pool_rows = {r[0]: r for r in rows(text, "pools")}
        assert set(pool_rows) == set(pools)
        for name, (site_name, group) in pools.items():
            capacity = group.count * group.accelerators_per_node
            assert pool_rows[name][1:3] == [site_name, group.accelerator_class]
            assert pool_rows[name][3] == f"{group.count}/{group.count}"
            assert pool_rows[name][4] == str(capacity)
        queue_rows = {r[0]: r for r in rows(text, "queues")}
        # deserved, allocated, waiting workloads
        assert [queue_rows[queue][i] for i in (2, 4, 7)] == ["16", "8", "1"]
        workload_rows = {r[0]: r for r in rows(text, "workloads")}
        placement = running["status"]["placement"]
        assert workload_rows[f"{team}/fits"][1:5] == [
            queue,
            "1×8 nvidia-h100",
            "Running",
            f"{placement['site']}/{placement['pool']}",
        ]
        nowhere = workload_rows[f"{team}/nowhere"]
        assert nowhere[3:5] == ["Pending", "-"]
        assert nowhere[5] == "; ".join(
            f"{v['site']}: {v['rule']}" for v in waiting["status"]["verdicts"][:3]
        )
        assert {v["rule"] for v in waiting["status"]["verdicts"]} == {"ResidencyDenied"}

        # -- explain: where it runs ------------------------------------------------------
        (pod,) = [p for c in fleet.clients for p in fleet.workload_pods(team, "fits")[c]]
        text = gpufleet(fleet, "explain", f"{team}/fits").stdout
        assert text.splitlines()[0] == f"{team}/fits in queue {queue}: Running"
        assert (
            f"placed at site {placement['site']}, pool {placement['pool']},"
            f" epoch {placement['epoch']}, 1 replica(s) on 1 node(s): {pod.spec.node_name}"
        ) in text

        # -- explain: why it waits, per site ----------------------------------------------
        text = gpufleet(fleet, "explain", "nowhere", "-n", team).stdout
        assert text.splitlines()[0] == f"{team}/nowhere in queue {queue}: Pending"
        assert "position in its queue: 1" in text
        verdicts = {r[0]: r for r in rows(text, "per-site verdicts")}
        assert set(verdicts) == set(sites)
        for name, site in sites.items():
            assert verdicts[name][1] == "ResidencyDenied"
            assert f"site {name} is in {site.jurisdiction}" in verdicts[name][2]
            assert "FR" in verdicts[name][2]

        explained = json.loads(gpufleet(fleet, "explain", f"{team}/nowhere", "--json").stdout)
        now = fleet.workload(team, "nowhere")["status"]
        assert explained == {
            "workload": f"{team}/nowhere",
            "phase": "Pending",
            "placement": None,
            "verdicts": now["verdicts"],
            "queuePosition": 1,
        }
        explained = json.loads(gpufleet(fleet, "explain", f"{team}/fits", "--json").stdout)
        assert explained["phase"] == "Running"
        assert explained["placement"] == placement

        missing = gpufleet(fleet, "explain", f"{team}/absent", check=False)
        assert missing.returncode == 1
        assert f"Workload {team}/absent: Not Found" in missing.stderr
    finally:
        fleet.delete_all_workloads(team)
        fleet.hub.kubectl("delete", "queue", queue, "--wait=false", check=False)
