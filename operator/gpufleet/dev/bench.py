"""Measure a local fleet: time to start a control plane, create N nodes, and its memory.

`bench_hollow` measures hollow kubelets instead: start to Ready, memory, CPU, load.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from gpufleet.dev import clusters, hollow
from gpufleet.dev.tools import Toolset
from gpufleet.fleetfile import Fleet, parse_fleet


def rss_mb(pids: list[int]) -> dict[str, float]:
    """Resident memory per component (MiB), read from /proc."""
    out: dict[str, float] = {}
    for pid in pids:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[comm] = out.get(comm, 0.0) + int(line.split()[1]) / 1024
        except OSError:
            continue
    return {k: round(v, 1) for k, v in sorted(out.items())}


def bench_nodes(nodes: int, *, name: str = "bench", keep: bool = False) -> dict[str, Any]:
    fleet = parse_fleet(
        {
            "name": name,
            "clusters": [
                {
                    "name": "scale",
                    "hub": True,
                    "site": {"name": "scale", "type": "AIFactory", "jurisdiction": "DE"},
                    "nodeGroups": [
                        {
                            "name": "bench-h100",
                            "count": 0,
                            "acceleratorClass": "nvidia-h100",
                            "acceleratorsPerNode": 8,
                            "topology": {"nodesPerRack": 16},
                        }
                    ],
                }
            ],
        }
    )
    clusters.down(name)
    t0 = time.monotonic()
    running = clusters.up(fleet, source="bench", name=name)
    started = time.monotonic() - t0
    cluster = running.hub
    spec = fleet.clusters[0]
    group = spec.node_groups[0].model_copy(update={"count": nodes})
    spec = spec.model_copy(update={"node_groups": [group]})
    from gpufleet.dev.nodes import iter_node_manifests

    t1 = time.monotonic()
    clusters.create_nodes(cluster, iter_node_manifests(spec))
    created = time.monotonic() - t1
    clusters.wait_nodes_ready(cluster, nodes, timeout=600)
    ready = time.monotonic() - t1
    time.sleep(5)  # let heartbeats settle before reading memory
    memory = rss_mb(clusters.cluster_processes(cluster.kwok_name))
    result = {
        "nodes": nodes,
        "control_plane_start_seconds": round(started, 2),
        "create_nodes_seconds": round(created, 2),
        "nodes_ready_seconds": round(ready, 2),
        "nodes_per_second": round(nodes / created, 1),
        "rss_mb": memory,
        "rss_total_mb": round(sum(memory.values()), 1),
    }
    if not keep:
        clusters.down(name)
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (seconds), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[-1].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def bench_hollow(
    count: int, *, name: str = "bench-hollow", settle: float = 60.0, keep: bool = False
) -> dict[str, Any]:
    """Start N hollow kubelets at once against one control plane; time, memory, CPU, load.

    Per node: from its process start to its Node first seen Ready (polled every 0.5 s).
    After all are Ready, `settle` seconds of steady state: RSS per kubelet at the end,
    the CPU the kubelets used over the window (in cores), and the 1-minute load average
    before the kubelets started and at the end (the machine's, other work included).
    """
    from gpufleet.dev.tools import find_tools

    fleet = _hollow_fleet(count)
    tools = find_tools()
    tools.require_kubemark()
    clusters.down(name)
    # The control plane alone; the kubelets are started below, timed one by one.
    empty = fleet.model_copy(
        update={"clusters": [fleet.clusters[0].model_copy(update={"node_groups": []})]}
    )
    cluster = clusters.up(empty, source="bench", name=name).hub
    try:
        load_before = _loadavg()
        started, pids = _start_kubelets(tools, name, fleet, cluster)
        ready = _ready_after_start(cluster, started)
        if len(ready) < count:
            raise clusters.FleetError(
                f"only {len(ready)}/{count} hollow kubelets became Ready; logs in "
                f"{hollow.hollow_dir(clusters.state_dir(), name)}"
            )
        cpu_cores, window = _cpu_cores_over(list(pids.values()), settle)
        rss = [rss_mb([p]).get("kubemark", 0.0) for p in pids.values()]
        control_plane = rss_mb(clusters.cluster_processes(cluster.kwok_name))
        times = sorted(ready.values())
        return {
            "hollow_nodes": count,
            "cores": os.cpu_count(),
            "start_to_ready_seconds": {
                "median": round(statistics.median(times), 1),
                "max": round(times[-1], 1),
            },
            "rss_mb_per_kubelet": {
                "median": round(statistics.median(rss), 1),
                "max": round(max(rss), 1),
            },
            "rss_mb_all_kubelets": round(sum(rss), 1),
            "rss_mb_control_plane": round(sum(control_plane.values()), 1),
            "kubelets_cpu_cores_steady": round(cpu_cores, 2),
            "settle_seconds": round(window, 1),
            "loadavg_1m_before": load_before,
            "loadavg_1m_after": _loadavg(),
        }
    finally:
        if not keep:
            clusters.down(name)


def _hollow_fleet(count: int) -> Fleet:
    return parse_fleet(
        {
            "name": "bench",
            "clusters": [
                {
                    "name": "scale",
                    "hub": True,
                    "site": {"name": "scale", "type": "AIFactory", "jurisdiction": "DE"},
                    "nodeGroups": [
                        {
                            "name": "hollow-h100",
                            "kubelet": "hollow",
                            "count": count,
                            "acceleratorClass": "nvidia-h100",
                            "acceleratorsPerNode": 8,
                        }
                    ],
                }
            ],
        }
    )


def _start_kubelets(
    tools: Toolset, name: str, fleet: Fleet, cluster: clusters.Cluster
) -> tuple[dict[str, float], dict[str, int]]:
    """Each hollow kubelet of the fleet's cluster started: when (monotonic) and its pid, by node."""
    started: dict[str, float] = {}
    pids: dict[str, int] = {}
    for _, node in hollow.hollow_nodes_of(name, fleet.clusters[0], cluster.kubeconfig):
        started[node.name] = time.monotonic()
        pids[node.name] = hollow.start(tools, clusters.state_dir(), node)
    return started, pids


def _ready_after_start(cluster: clusters.Cluster, started: dict[str, float]) -> dict[str, float]:
    """Seconds from each kubelet's start to its Node first seen Ready, polled every 0.5 s
    for at most 300 s + 10 s a kubelet; the ones not Ready by then are missing."""
    from kubernetes import client

    count = len(started)
    ready: dict[str, float] = {}
    api_client = cluster.api_client()
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + 300 + 10 * count
    try:
        while len(ready) < count and time.monotonic() < deadline:
            for n in core.list_node(label_selector=hollow.HOLLOW_SELECTOR).items:
                name_ = n.metadata.name
                if name_ not in ready and any(
                    c.type == "Ready" and c.status == "True" for c in (n.status.conditions or [])
                ):
                    ready[name_] = time.monotonic() - started[name_]
            time.sleep(0.5)
    finally:
        api_client.close()
    return ready


def _cpu_cores_over(pids: list[int], seconds: float) -> tuple[float, float]:
    """The CPU the processes used over a window of `seconds`, in cores, and the window's length."""
    cpu_before = {p: _cpu_seconds(p) for p in pids}
    t0 = time.monotonic()
    time.sleep(seconds)  # the measurement window itself, not a wait for anything
    window = time.monotonic() - t0
    return sum(_cpu_seconds(p) - c for p, c in cpu_before.items()) / window, window
