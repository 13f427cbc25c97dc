"""The fleet's invariants, checked from the clusters' own objects after a run."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from kubernetes import client

from e2e.operator_harness import Fleet

POOL_CLASS = {
    "fra-h100": "nvidia-h100",
    "ams-h200": "nvidia-h200",
    "osl-h200": "nvidia-h200",
    "osl-trn2": "aws-trainium2",
}


def check(fleet: Fleet, namespace: str, names: set[str], limits: dict[str, int]) -> dict[str, int]:
    """Asserts: no workload lost, every placed workload's pods exactly once on its site at
    its epoch and nodes, no stray pod, no queue above its limit, no node above its
    accelerators. Returns counts by phase."""
    items = fleet.workloads(namespace)
    assert {w["metadata"]["name"] for w in items} == names, "workloads lost or unexpected"
    placed = [w for w in items if _placed(w)]
    pods_by_workload = _live_pods(fleet, namespace)
    duplicates = 0
    for w in placed:
        placement = w["status"]["placement"]
        pods = pods_by_workload.pop(w["metadata"]["name"], [])
        assert {c for c, _ in pods} == {placement["site"]}, (w["metadata"]["name"], pods)
        replicas = Counter(p.metadata.labels["gpufleet.io/replica"] for _, p in pods)
        duplicates += sum(n - 1 for n in replicas.values())
        assert len(replicas) == len(placement["replicas"]), w["metadata"]["name"]
        assert {p.metadata.labels["gpufleet.io/epoch"] for _, p in pods} == {
            str(placement["epoch"])
        }
        assert {p.spec.node_name for _, p in pods} == {r["node"] for r in placement["replicas"]}
    assert duplicates == 0, f"{duplicates} duplicate pods"
    assert not pods_by_workload, f"pods of workloads not placed: {sorted(pods_by_workload)}"
    used: Counter[tuple[str, str]] = Counter()
    for w in placed:
        p = w["status"]["placement"]
        used[(w["spec"]["queue"], POOL_CLASS[p["pool"]])] += (
            len(p["replicas"]) * w["spec"]["acceleratorsPerReplica"]
        )
    for (q, cls), n in used.items():
        assert n <= limits[cls], f"queue {q} holds {n} {cls} above its limit {limits[cls]}"
    _no_node_above_its_accelerators(fleet)
    return dict(Counter((w.get("status") or {}).get("phase", "Pending") for w in items))


def _placed(w: dict[str, Any]) -> bool:
    return (w.get("status") or {}).get("phase") in ("Admitted", "Running")


def _live_pods(fleet: Fleet, namespace: str) -> dict[str, list[tuple[str, Any]]]:
    """Workload name -> its (cluster, pod)s that hold their node."""
    pods_by_workload: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for cluster in fleet.clients:
        for pod in fleet.pods(cluster, namespace):
            # Finished pods hold nothing (and stay for their logs); pods being deleted go.
            if pod.metadata.deletion_timestamp is None and pod.status.phase not in (
                "Succeeded",
                "Failed",
            ):
                pods_by_workload[pod.metadata.labels["gpufleet.io/workload"]].append((cluster, pod))
    return pods_by_workload


def unplaced_with_pods(fleet: Fleet, namespace: str) -> list[str]:
    """Workloads not placed whose pods still hold nodes. The operator removes them on its
    next cycles (a kill can land between a workload's status write and its pods' deletion),
    so this is waited out; pods that stay are reported by `check`."""
    pods = _live_pods(fleet, namespace)
    return sorted(
        w["metadata"]["name"]
        for w in fleet.workloads(namespace)
        if not _placed(w) and w["metadata"]["name"] in pods
    )


def _no_node_above_its_accelerators(fleet: Fleet) -> None:
    for cluster, api in fleet.clients.items():
        core = client.CoreV1Api(api)
        allocatable = {
            n.metadata.name: {
                k: int(v) for k, v in (n.status.allocatable or {}).items() if k.count("/") == 1
            }
            for n in core.list_node().items
        }
        held: Counter[tuple[str, str]] = Counter()
        for pod in core.list_pod_for_all_namespaces().items:
            if pod.status.phase in ("Succeeded", "Failed") or not pod.spec.node_name:
                continue
            for c in pod.spec.containers:
                for k, v in ((c.resources and c.resources.limits) or {}).items():
                    if k.count("/") == 1:
                        held[(pod.spec.node_name, k)] += int(v)
        for (node, resource), n in held.items():
            cap = allocatable.get(node, {}).get(resource, 0)
            assert n <= cap, f"{cluster}/{node}: {n} {resource} held, {cap} allocatable"
