"""The dev fleet is made of real control planes whose fake nodes behave like GPU nodes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from gpufleet.dev.clusters import Cluster, RunningFleet
from gpufleet.dev.inventory import cluster_inventory
from gpufleet.dev.nodes import DEFAULT_FLEET
from gpufleet.fleetfile import load_fleet

pytestmark = pytest.mark.cluster


def _pod(name: str, resource: str, count: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"limits": {resource: str(count)}},
                }
            ]
        },
    }


def _wait_pod(core: client.CoreV1Api, ns: str, name: str, done: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    pod = core.read_namespaced_pod(name, ns)
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, ns)
        if done(pod):
            return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {ns}/{name} did not reach the expected state: {pod.status}")


def test_three_clusters_come_up_with_their_declared_nodes(dev_fleet: RunningFleet) -> None:
    fleet = load_fleet(DEFAULT_FLEET)
    assert set(dev_fleet.clusters) == {c.name for c in fleet.clusters}
    for spec in fleet.clusters:
        inv = cluster_inventory(dev_fleet.clusters[spec.name])
        expected_nodes = sum(g.count for g in spec.node_groups)
        assert inv.nodes == inv.nodes_ready == expected_nodes
        for group in spec.node_groups:
            assert (
                inv.accelerators[group.accelerator_class]
                >= group.count * group.accelerators_per_node
            )


def test_every_cluster_reports_the_real_kubernetes_version(dev_fleet: RunningFleet) -> None:
    for cluster in dev_fleet.clusters.values():
        api = cluster.api_client()
        try:
            version = client.VersionApi(api).get_code()
        finally:
            api.close()
        assert version.git_version == "v1.37.2", cluster.name


def test_nodes_list_accelerators_in_allocatable(dev_fleet: RunningFleet) -> None:
    api = dev_fleet.clusters["factory-osl"].api_client()
    try:
        nodes = client.CoreV1Api(api).list_node().items
    finally:
        api.close()
    by_pool: dict[str, set[str]] = {}
    for node in nodes:
        pool = node.metadata.labels["gpufleet.io/pool"]
        alloc = node.status.allocatable
        by_pool.setdefault(pool, set()).update(k for k in alloc if "/" in k)
    assert by_pool["osl-h200"] == {"nvidia.com/gpu"}
    assert by_pool["osl-trn2"] == {"aws.amazon.com/neuron"}


def test_pod_asking_eight_gpus_runs_on_a_fake_node(hub: Cluster, namespace: str) -> None:
    api = hub.api_client()
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, _pod("train", "nvidia.com/gpu", 8))
    pod = _wait_pod(core, namespace, "train", lambda p: p.status.phase == "Running")
    node = core.read_node(pod.spec.node_name)
    assert node.status.allocatable["nvidia.com/gpu"] == "8"
    api.close()


def test_pod_asking_more_than_any_node_has_stays_pending_with_the_schedulers_reason(
    hub: Cluster, namespace: str
) -> None:
    api = hub.api_client()
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, _pod("too-big", "nvidia.com/gpu", 9))

    def unschedulable(p: Any) -> bool:
        return any(
            c.type == "PodScheduled" and c.reason == "Unschedulable"
            for c in (p.status.conditions or [])
        )

    pod = _wait_pod(core, namespace, "too-big", unschedulable)
    assert pod.status.phase == "Pending"
    cond = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert "Insufficient nvidia.com/gpu" in cond.message
    api.close()
