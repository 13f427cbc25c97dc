"""Operator throughput on one cluster, next to the API server's own ceiling in the same run.

Ceiling: plain pods, already bound to a node, created as fast as 16 client threads can,
until KWOK reports them all Running. Operator: single-replica Workloads created the same
way; gpufleet admits each (a status write), creates its pod and records it Running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.dev import clusters
from gpufleet.dev.operator_process import free_port, start_operator
from gpufleet.dev.register import register
from gpufleet.fleetfile import parse_fleet

Progress = Callable[[str], None]


def _fleet(nodes: int) -> Any:
    return parse_fleet(
        {
            "name": "bench-op",
            "clusters": [
                {
                    "name": "bench",
                    "hub": True,
                    "site": {
                        "name": "bench",
                        "type": "AIFactory",
                        "jurisdiction": "DE",
                        "regions": ["EU"],
                    },
                    "nodeGroups": [
                        {
                            "name": "bench-h100",
                            "count": nodes,
                            "acceleratorClass": "nvidia-h100",
                            "acceleratorsPerNode": 8,
                            "topology": {"nodesPerRack": 16},
                        }
                    ],
                }
            ],
        }
    )


def _parallel(items: list[Any], fn: Callable[[Any], None], workers: int = 16) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fn, items))


def _wait(
    what: str, probe: Callable[[], int], target: int, timeout: float, progress: Progress
) -> float:
    start = time.monotonic()
    last = -1
    while time.monotonic() - start < timeout:
        n = probe()
        if n != last:
            progress(f"{what}: {n}/{target}")
            last = n
        if n >= target:
            return time.monotonic()
        time.sleep(0.5)
    raise TimeoutError(f"{what}: only {last}/{target} after {timeout:.0f}s")


def measure(nodes: int = 1000, workloads: int = 2000, progress: Progress = print) -> dict[str, Any]:
    """1. one cluster with `nodes` KWOK nodes, gpufleet's CRDs and the fleet's objects;
    2. the API server's ceiling: `workloads` plain, pre-bound pods until all run;
    3. the operator: as many single-replica Workloads, until all are admitted and run.
    The cluster is brought down after, whatever happened."""
    fleet = _fleet(nodes)
    clusters.down("bench-op")
    progress(f"bringing up one cluster with {nodes} nodes")
    running = clusters.up(fleet, source="bench", name="bench-op")
    try:
        register(fleet, running, "gpufleet-system")
        apis = _Apis.connect(running.hub)
        # gpufleet dispatches only into namespaces that enforce the queue's Pod Security level.
        labels = {"pod-security.kubernetes.io/enforce": "baseline"}
        for ns in ("ceiling", "bench"):
            apis.core.create_namespace({"metadata": {"name": ns, "labels": labels}})
        ceiling = _ceiling(apis, nodes, workloads, progress)
        operator = _operator(apis, running.hub.kubeconfig, nodes, workloads, progress)
        apis.api.close()
        return {
            "nodes": nodes,
            "workloads": workloads,
            "api_server_ceiling": ceiling,
            "operator": operator,
            "ratio_running_vs_ceiling": round(
                operator["running_per_second"] / ceiling["running_per_second"], 3
            ),
        }
    finally:
        clusters.down("bench-op")


@dataclass(frozen=True)
class _Apis:
    """Clients of the bench cluster sharing one connection pool, 16 connections wide."""

    api: Any
    core: Any
    custom: Any

    @staticmethod
    def connect(hub: clusters.Cluster) -> _Apis:
        from kubernetes import client

        api = hub.api_client()
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16
        return _Apis(api, client.CoreV1Api(api), client.CustomObjectsApi(api))


# -- the API server's ceiling -----------------------------------------------------------


def _ceiling(apis: _Apis, nodes: int, workloads: int, progress: Progress) -> dict[str, float]:
    """Plain pods, pre-bound round-robin to the nodes, created until all run; then removed."""
    node_names = [f"bench-h100-{i:05d}" for i in range(nodes)]
    progress(f"ceiling: creating {workloads} plain pods")
    t0 = time.monotonic()
    _parallel(list(range(workloads)), partial(_create_plain_pod, apis.core, node_names))
    created = time.monotonic() - t0
    t_run = _wait(
        "ceiling pods running",
        partial(_running_pods, apis.core, "ceiling"),
        workloads,
        600,
        progress,
    )
    apis.core.delete_collection_namespaced_pod("ceiling", grace_period_seconds=0)
    _wait(
        "ceiling pods removed",
        lambda: workloads - len(apis.core.list_namespaced_pod("ceiling").items),
        workloads,
        600,
        progress,
    )
    return {
        "created_per_second": round(workloads / created, 1),
        "running_per_second": round(workloads / (t_run - t0), 1),
        "seconds": round(t_run - t0, 2),
    }


def _create_plain_pod(core: Any, node_names: list[str], i: int) -> None:
    core.create_namespaced_pod(
        "ceiling",
        {
            "metadata": {"name": f"p{i:05d}"},
            "spec": {
                "nodeName": node_names[i % len(node_names)],
                "containers": [
                    {
                        "name": "c",
                        "image": "pause",
                        "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    }
                ],
            },
        },
    )


def _running_pods(core: Any, ns: str) -> int:
    pods = core.list_namespaced_pod(ns, _request_timeout=60).items
    return sum(1 for p in pods if p.status.phase == "Running")


# -- the operator ---------------------------------------------------------------------


def _operator(
    apis: _Apis, kubeconfig: Path, nodes: int, workloads: int, progress: Progress
) -> dict[str, Any]:
    """A queue deserving the whole fleet; the operator in a process of its own (its log
    in the state directory), stopped once every workload runs or the wait fails."""
    _create_queue(apis.custom, nodes)
    port = free_port()
    with open(clusters.state_dir() / "bench-op-operator.log", "wb") as log:
        proc = start_operator(kubeconfig, log, port)
        try:
            time.sleep(3)
            t = _submit_and_wait(apis.custom, workloads, progress)
            writes = _writes_by_kind(port)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "submitted_per_second": round(workloads / t.submitted, 1),
        "admitted_per_second": round(workloads / (t.admitted - t.start), 1),
        "running_per_second": round(workloads / (t.running - t.start), 1),
        "seconds_to_all_running": round(t.running - t.start, 2),
        # The operator's own write requests (its metrics), over the whole run.
        "api_writes": writes,
        "api_writes_per_workload": round(sum(writes.values()) / workloads, 2),
    }


def _create_queue(custom: Any, nodes: int) -> None:
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "queues",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Queue",
            "metadata": {"name": "bench"},
            "spec": {
                "namespaces": ["bench"],
                "resources": [{"acceleratorClass": "nvidia-h100", "deserved": nodes * 8}],
            },
        },
    )


@dataclass(frozen=True)
class _Timings:
    """Monotonic times: submission started, all admitted, all running; and how long
    submitting took."""

    start: float
    submitted: float
    admitted: float
    running: float


def _submit_and_wait(custom: Any, workloads: int, progress: Progress) -> _Timings:
    progress(f"operator: creating {workloads} workloads")
    t0 = time.monotonic()
    _parallel(list(range(workloads)), partial(_create_workload, custom))
    submitted = time.monotonic() - t0
    t_adm = _wait(
        "workloads admitted",
        lambda: (lambda p: p.get("Admitted", 0) + p.get("Running", 0))(_phases(custom)),
        workloads,
        900,
        progress,
    )
    t_run = _wait(
        "workloads running", lambda: _phases(custom).get("Running", 0), workloads, 900, progress
    )
    return _Timings(t0, submitted, t_adm, t_run)


def _create_workload(custom: Any, i: int) -> None:
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        "bench",
        "workloads",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Workload",
            "metadata": {"name": f"w{i:05d}"},
            "spec": {
                "queue": "bench",
                "acceleratorsPerReplica": 1,
                "acceleratorClasses": ["nvidia-h100"],
                "template": {"spec": {"containers": [{"name": "c", "image": "pause"}]}},
            },
        },
    )


def _phases(custom: Any) -> dict[str, int]:
    """How many of the bench's workloads are in each phase."""
    items = custom.list_namespaced_custom_object(
        GROUP, VERSION, "bench", "workloads", _request_timeout=60
    )["items"]
    out: dict[str, int] = {}
    for w in items:
        p = (w.get("status") or {}).get("phase", "Pending")
        out[p] = out.get(p, 0) + 1
    return out


def _writes_by_kind(port: int) -> dict[str, int]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    # Fixed http URL on loopback.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as rsp:  # nosec B310
        text = rsp.read().decode()
    return {
        s.labels["kind"]: int(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gpufleet_api_writes_total"
    }
