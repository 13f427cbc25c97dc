"""An own three-site fleet with gpufleet registered and the operator running as a process.

Tests marked `tiers` run twice: on KWOK nodes (`tier` "kwok", the dev fleet) and on
hollow kubelets (`tier` "hollow", dev/fleets/hollow.yaml: real kubelets that refuse
what does not fit and keep a deleted pod until its grace period has run out). Each
tier has its own fleet and operator for the session. On both, `pod_log` watches
every pod of every cluster: a pod a kubelet refused fails the test that caused it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import bring_up
from e2e.operator_harness import Fleet, OperatorProcess
from e2e.pod_log import PodLog
from gpufleet.dev import clusters
from gpufleet.dev.nodes import DEFAULT_FLEET, HOLLOW_FLEET
from gpufleet.dev.register import register
from gpufleet.fleetfile import load_fleet

FLEET_NAME = os.environ.get("GPUFLEET_TEST_OPERATOR_FLEET", "test-op")
HOLLOW_FLEET_NAME = os.environ.get("GPUFLEET_TEST_HOLLOW_OPERATOR_FLEET", f"{FLEET_NAME}-hollow")
TIERS = ("kwok", "hollow")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "tier" in metafunc.fixturenames:
        tiers = TIERS if metafunc.definition.get_closest_marker("tiers") else ("kwok",)
        metafunc.parametrize("tier", tiers, indirect=True, scope="session")


@pytest.fixture(scope="session")
def tier(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "kwok"))


@pytest.fixture(scope="session")
def op_fleet(tier: str) -> Iterator[clusters.RunningFleet]:
    source, name = (
        (HOLLOW_FLEET, HOLLOW_FLEET_NAME) if tier == "hollow" else (DEFAULT_FLEET, FLEET_NAME)
    )
    fleet = load_fleet(source)
    for running in bring_up(fleet, name, str(source)):
        register(fleet, running, "gpufleet-system")
        yield running


@pytest.fixture(scope="session")
def pod_log(op_fleet: clusters.RunningFleet, tier: str) -> Iterator[PodLog]:
    log = PodLog(op_fleet)
    log.start()
    try:
        yield log
    finally:
        log.stop()
        # Kept for the record (refusals, grace periods, hand-off times), one file per tier.
        log.write(
            Path(os.environ.get("GPUFLEET_TEST_POD_LOG_DIR", "/tmp"))
            / f"gpufleet-pods-{op_fleet.name}.json"
        )


@pytest.fixture(autouse=True)
def no_pod_refused(pod_log: PodLog) -> Iterator[None]:
    """A kubelet refusing one of the test's pods is a placement gpufleet got wrong."""
    before = len(pod_log.refused)
    yield
    new = pod_log.refused[before:]
    assert not new, f"pods refused by a kubelet during this test: {new}"


@pytest.fixture(scope="session")
def operator(
    op_fleet: clusters.RunningFleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(op_fleet.hub, tmp_path_factory.mktemp("operator-logs"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def fleet(op_fleet: clusters.RunningFleet, operator: OperatorProcess) -> Iterator[Fleet]:
    f = Fleet(op_fleet)
    yield f
    f.close()


@pytest.fixture
def team(fleet: Fleet) -> Iterator[str]:
    """A fresh namespace on the hub; its workloads are deleted (and so their pods) afterwards."""
    name = f"team-{uuid.uuid4().hex[:8]}"
    fleet.hub.kubectl("create", "namespace", name)
    # Hub-local sites dispatch into the Workload's own namespace, which gpufleet does not
    # create: it must enforce at least the queue's Pod Security level (docs/security.md).
    fleet.hub.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=baseline")
    yield name
    fleet.delete_all_workloads(name)
    fleet.hub.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
    # The fault tests pause and kill a member's API server of the shared operator fleet and
    # restart it; they run last, so no other test depends on how well that fleet recovered.
    faults = [i for i in items if Path(str(i.fspath)).name == "test_faults_contained.py"]
    if faults:
        rest = [i for i in items if Path(str(i.fspath)).name != "test_faults_contained.py"]
        items[:] = rest + faults
