"""Measure a local fleet: time to start a control plane, create N nodes, and its memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gpufleet.dev import clusters
from gpufleet.fleetfile import parse_fleet


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
