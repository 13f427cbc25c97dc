"""Shared fixtures: a real local multi-site fleet brought up once per test session.

Cluster tests (marker `cluster`) run against real control planes (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler) with KWOK GPU nodes.
Without the built binaries they are skipped locally with the reason, and fail
under `make test` / CI (GPUFLEET_REQUIRE_CLUSTER=1), where skipping would hide
a broken set-up.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from gpufleet.corebuild import core_build, stale_error
from gpufleet.dev import clusters
from gpufleet.dev.nodes import DEFAULT_FLEET, HOLLOW_FLEET
from gpufleet.dev.tools import ToolsMissingError, find_tools
from gpufleet.fleetfile import Fleet, load_fleet, parse_fleet

TEST_FLEET_NAME = os.environ.get("GPUFLEET_TEST_FLEET", "test")
# The hollow-kubelet fleet (dev/fleets/hollow.yaml) runs under its own name beside it.
TEST_HOLLOW_FLEET_NAME = os.environ.get("GPUFLEET_TEST_HOLLOW_FLEET", "test-hollow")
# Keep the fleet up after the session (faster local iterations); CI never sets it.
REUSE = os.environ.get("GPUFLEET_TEST_REUSE") == "1"
REQUIRE = os.environ.get("GPUFLEET_REQUIRE_CLUSTER") == "1" or os.environ.get("CI") == "true"


def bring_up(fleet: Fleet, name: str, source: str) -> Iterator[clusters.RunningFleet]:
    """A fleet for the session: up before the first test that needs it, down after the last."""
    try:
        tools = find_tools()
        if any(g.kubelet == "hollow" for c in fleet.clusters for g in c.node_groups):
            tools.require_kubemark()
    except ToolsMissingError as exc:
        if REQUIRE:
            pytest.fail(f"cluster tests need the local binaries: {exc}")
        pytest.skip(f"cluster tests need the local binaries: {exc}")
    running = clusters.up(fleet, source=source, name=name, reuse=REUSE)
    RUNNING[name] = running
    try:
        yield running
    finally:
        RUNNING.pop(name, None)
        if not REUSE:
            clusters.down(name)


# The fleets up in this session, checked after every cluster test (`no_node_overcommitted`).
RUNNING: dict[str, clusters.RunningFleet] = {}


def overcommitted_nodes(running: clusters.RunningFleet) -> list[str]:
    """Nodes whose non-terminated pods request more accelerators than the node has, read from
    the cluster's own objects and counted as kube-scheduler counts (init containers,
    sidecars, overhead); Terminating pods count, as they do for the kubelet."""
    from kubernetes import client

    from gpufleet.observed.podrequests import pod_requests

    out = []
    for cname, cluster in running.clusters.items():
        api = cluster.api_client()
        try:
            core = client.CoreV1Api(api)
            nodes = json.loads(core.list_node(_preload_content=False).data)["items"]
            pods = json.loads(core.list_pod_for_all_namespaces(_preload_content=False).data)
        finally:
            api.close()
        used: dict[tuple[str, str], int] = {}
        for pod in pods["items"]:
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for resource, n in pod_requests(pod["spec"]).accelerators.items():
                used[(node, resource)] = used.get((node, resource), 0) + n
        for node in nodes:
            name = node["metadata"]["name"]
            alloc = (node.get("status") or {}).get("allocatable") or {}
            for (at, resource), n in used.items():
                have = int(alloc.get(resource, "0"))
                if at == name and n > have:
                    out.append(f"{running.name}/{cname}/{name}: {resource} {n} requested of {have}")
    return out


@pytest.fixture(autouse=True)
def no_node_overcommitted(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every cluster test: no node of any fleet holds more accelerators than it has."""
    yield
    if request.node.get_closest_marker("cluster") is None:
        return
    over = [line for running in list(RUNNING.values()) for line in overcommitted_nodes(running)]
    assert not over, f"nodes above their accelerators after the test: {over}"


@pytest.fixture(scope="session")
def dev_fleet() -> Iterator[clusters.RunningFleet]:
    yield from bring_up(load_fleet(DEFAULT_FLEET), TEST_FLEET_NAME, str(DEFAULT_FLEET))


@pytest.fixture(scope="session")
def hollow_fleet() -> Iterator[clusters.RunningFleet]:
    """The three sites on hollow kubelets (real kubelet, fake runtime), plus two KWOK nodes."""
    yield from bring_up(load_fleet(HOLLOW_FLEET), TEST_HOLLOW_FLEET_NAME, str(HOLLOW_FLEET))


@pytest.fixture(scope="session")
def hub(dev_fleet: clusters.RunningFleet) -> clusters.Cluster:
    return dev_fleet.hub


@pytest.fixture
def namespace(hub: clusters.Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    hub.kubectl("create", "namespace", name)
    # A tenant namespace as an admin sets it up: enforcing the queues' default Pod Security
    # level, without which gpufleet dispatches nothing into it (docs/security.md).
    hub.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=baseline")
    try:
        yield name
    finally:
        hub.kubectl("delete", "namespace", name, "--wait=false", check=False)


# Hypothesis profiles for every package of tests (tests/core/conftest.py holds the same for
# the core alone): `default` quick, `ci` (make test) and `thorough` thousands of examples.
_HYPOTHESIS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", _HYPOTHESIS, max_examples=100)
settings.register_profile("ci", _HYPOTHESIS, max_examples=1000)
settings.register_profile("thorough", _HYPOTHESIS, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    # A compiled core older than its source would test yesterday's code.
    stale = stale_error()
    if stale:
        pytest.exit(stale, 2)
    expected = os.environ.get("GPUFLEET_EXPECT_CORE")
    if expected and core_build() != expected:
        pytest.exit(f"GPUFLEET_EXPECT_CORE={expected} but the {core_build()} core is loaded", 2)


def pytest_report_header(config: pytest.Config) -> str:
    return f"gpufleet.core: {core_build()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything that uses the fleet is a cluster test, whether or not it says so.
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if {"dev_fleet", "hollow_fleet", "hub", "namespace"} & set(fixtures):
            item.add_marker(pytest.mark.cluster)


BIG_FLEET = {
    "name": "big",
    "clusters": [
        {
            "name": "scale",
            "hub": True,
            "site": {"name": "scale", "type": "AIFactory", "jurisdiction": "DE", "regions": ["EU"]},
            "nodeGroups": [
                {
                    "name": "big-h100",
                    "count": 1000,
                    "acceleratorClass": "nvidia-h100",
                    "acceleratorsPerNode": 8,
                    "gpuProduct": "NVIDIA-H100-80GB-HBM3",
                    "topology": {"nodesPerRack": 16},
                }
            ],
        }
    ],
}


@pytest.fixture(scope="session")
def big_cluster() -> Iterator[clusters.RunningFleet]:
    """A single cluster with 1,000 fake 8-GPU nodes (scale tests)."""
    yield from bring_up(parse_fleet(BIG_FLEET), "test-big", "tests/conftest.py:BIG_FLEET")
