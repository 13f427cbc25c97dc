"""Hollow kubelets behave like real nodes: they refuse what does not fit, and pods end gracefully.

Against the hollow fleet (dev/fleets/hollow.yaml): three sites on kubemark, plus
two KWOK nodes at the hub, so that both tiers are tried in one cluster. Every wait
polls the API with a deadline; the timing assertions use the API server's own
timestamps (deletionTimestamp) against when the test saw the pod go.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from gpufleet.dev import clusters, hollow
from gpufleet.dev.nodes import HOLLOW_FLEET, node_labels, node_name
from gpufleet.fleetfile import HOLLOW_CPU, HOLLOW_MEMORY, load_fleet, parse_fleet

pytestmark = pytest.mark.cluster

T = TypeVar("T")
HUB = "onprem-fra"
GRACE = 20


def _until(what: str, probe: Callable[[], T | None], timeout: float = 60, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def fra(hollow_fleet: clusters.RunningFleet) -> Iterator[client.CoreV1Api]:
    api = hollow_fleet.clusters[HUB].api_client()
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


@pytest.fixture
def ns(fra: client.CoreV1Api) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    fra.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        fra.delete_namespace(name, grace_period_seconds=0)


def _pod(name: str, node: str, gpus: int = 0) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": resources}
            ],
        },
    }


def _running(fra: client.CoreV1Api, ns: str, name: str) -> Any:
    return _until(
        f"pod {name} Running",
        lambda: p if (p := fra.read_namespaced_pod(name, ns)).status.phase == "Running" else None,
    )


def _first_of(fra: client.CoreV1Api, kind: str) -> str:
    nodes = fra.list_node(label_selector=f"type={kind}").items
    assert nodes, f"no {kind} node in {HUB}"
    return str(sorted(n.metadata.name for n in nodes)[0])


def test_hollow_nodes_register_with_their_groups_labels_and_accelerators(
    hollow_fleet: clusters.RunningFleet,
) -> None:
    fleet = load_fleet(HOLLOW_FLEET)
    for spec in fleet.clusters:
        api = hollow_fleet.clusters[spec.name].api_client()
        try:
            nodes = {n.metadata.name: n for n in client.CoreV1Api(api).list_node().items}
        finally:
            api.close()
        for group in spec.node_groups:
            for i in range(group.count):
                node = nodes[node_name(group, i)]
                ready = [c.status for c in node.status.conditions if c.type == "Ready"]
                assert ready == ["True"], node.metadata.name
                # The same labels as a KWOK node of the group (and the kubelet's own).
                assert node_labels(spec, group, i).items() <= node.metadata.labels.items()
                alloc = node.status.allocatable
                assert alloc[group.resource_name] == str(group.accelerators_per_node)
                annotations = node.metadata.annotations or {}
                if group.kubelet == "hollow":
                    # KWOK manages only nodes with its annotation: these are the kubelet's own.
                    assert "kwok.x-k8s.io/node" not in annotations
                    assert node.status.node_info.kubelet_version == "v1.37.2"
                    assert node.status.capacity["cpu"] == HOLLOW_CPU
                    assert node.status.capacity["memory"] == HOLLOW_MEMORY
                else:
                    assert annotations["kwok.x-k8s.io/node"] == "fake"


def test_a_hollow_kubelet_refuses_a_pod_whose_gpus_are_taken(
    fra: client.CoreV1Api, ns: str
) -> None:
    node = _first_of(fra, "hollow")
    fra.create_namespaced_pod(ns, _pod("holder", node, gpus=8))
    _running(fra, ns, "holder")
    # Bound by nodeName, as gpufleet binds: no scheduler stands between it and the kubelet.
    fra.create_namespaced_pod(ns, _pod("late", node, gpus=1))
    late = _until(
        "the second pod ends Failed",
        lambda: p if (p := fra.read_namespaced_pod("late", ns)).status.phase == "Failed" else None,
    )
    assert late.status.reason.startswith("OutOf"), late.status
    assert late.status.reason == "OutOfnvidia.com/gpu"
    # The first keeps its GPUs.
    assert fra.read_namespaced_pod("holder", ns).status.phase == "Running"


@pytest.mark.parametrize("tier", ["hollow", "kwok"])
def test_a_deleted_pod_stays_terminating_for_its_grace_period(
    fra: client.CoreV1Api, ns: str, tier: str
) -> None:
    node = _first_of(fra, tier)
    fra.create_namespaced_pod(ns, _pod("graceful", node))
    _running(fra, ns, "graceful")
    asked = time.time()
    fra.delete_namespaced_pod("graceful", ns, grace_period_seconds=GRACE)
    try:
        pod = fra.read_namespaced_pod("graceful", ns)
    except ApiException as exc:
        if exc.status == 404:
            pytest.fail(
                f"the pod on {tier} node {node} was gone {time.time() - asked:.1f}s "
                f"after a delete with grace period {GRACE}s"
            )
        raise
    deadline_at = pod.metadata.deletion_timestamp.timestamp()
    assert pod.metadata.deletion_grace_period_seconds == GRACE
    # The API server sets deletionTimestamp to the request's time plus the grace period,
    # in whole seconds.
    assert GRACE - 1.5 <= deadline_at - asked <= GRACE + 1.5

    last_seen = asked

    def gone() -> float | None:
        nonlocal last_seen
        try:
            p = fra.read_namespaced_pod("graceful", ns)
        except ApiException as exc:
            if exc.status == 404:
                return time.time()
            raise
        assert p.metadata.deletion_timestamp is not None
        last_seen = time.time()
        return None

    gone_at = _until(f"the pod on {tier} node {node} is gone", gone, timeout=GRACE + 40, every=0.25)
    # Still there (Terminating) until its grace period had run out...
    assert last_seen >= deadline_at - 1.0, (last_seen - asked, deadline_at - asked)
    # ...and gone soon after: KWOK's stage deletes at deletionTimestamp; the hollow kubelet
    # stops the container when its preStop sleep is cut at the grace period, then deletes.
    assert gone_at <= deadline_at + 10, (gone_at - asked, deadline_at - asked)


def test_hollow_pods_get_a_prestop_sleep_of_their_grace_period(
    fra: client.CoreV1Api, ns: str
) -> None:
    pod = _pod("with-hook", _first_of(fra, "hollow"))
    pod["spec"]["terminationGracePeriodSeconds"] = 45
    pod["spec"]["containers"].append(
        {
            "name": "own-hook",
            "image": "registry.k8s.io/pause:3.10",
            "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},
        }
    )
    created = fra.create_namespaced_pod(ns, pod)
    hooks = {c.name: c.lifecycle.pre_stop.sleep.seconds for c in created.spec.containers}
    # Added where there was none; a container's own hook is left as it is.
    assert hooks == {"main": 45, "own-hook": 3}


def test_down_leaves_no_kubemark_behind_and_reuse_restarts_a_dead_one(
    hollow_fleet: clusters.RunningFleet,
) -> None:
    # A fleet of its own (one control plane, two hollow nodes): this test takes it down.
    name = f"{hollow_fleet.name}-life"
    fleet = parse_fleet(
        {
            "name": "life",
            "clusters": [
                {
                    "name": "solo",
                    "hub": True,
                    "site": {"name": "solo", "type": "OnPrem", "jurisdiction": "DE"},
                    "nodeGroups": [
                        {
                            "name": "solo-h100",
                            "kubelet": "hollow",
                            "count": 2,
                            "acceleratorClass": "nvidia-h100",
                            "acceleratorsPerNode": 8,
                        }
                    ],
                }
            ],
        }
    )
    state = clusters.state_dir()
    clusters.down(name)
    running = clusters.up(fleet, source="test", name=name)
    try:
        procs = hollow.fleet_processes(state, name)
        assert sorted(procs.values()) == ["solo-h100-00000", "solo-h100-00001"]
        victim = next(pid for pid, node in procs.items() if node == "solo-h100-00001")
        os.kill(victim, signal.SIGKILL)
        _until(
            "the killed kubemark is gone",
            lambda: victim not in hollow.fleet_processes(state, name) or None,
        )
        assert not hollow.alive(state, name, "solo-h100-00001")

        again = clusters.up(fleet, source="test", name=name, reuse=True)
        assert again.clusters.keys() == running.clusters.keys()
        assert hollow.alive(state, name, "solo-h100-00001")
        assert sorted(hollow.fleet_processes(state, name).values()) == [
            "solo-h100-00000",
            "solo-h100-00001",
        ]
    finally:
        clusters.down(name)
    assert hollow.fleet_processes(state, name) == {}
    assert clusters.cluster_processes(running.hub.kwok_name) == []
    leftover = [
        pid
        for pid in (int(p.name) for p in os.scandir("/proc") if p.name.isdigit())
        if f"{state / name}{os.sep}" in " ".join(hollow.process_cmdline(pid))
    ]
    assert leftover == []
