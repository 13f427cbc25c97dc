"""An own three-site fleet with gpufleet registered and the operator running as a process."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import bring_up
from e2e.operator_harness import Fleet, OperatorProcess
from gpufleet.dev import clusters
from gpufleet.dev.nodes import DEFAULT_FLEET
from gpufleet.dev.register import register
from gpufleet.fleetfile import load_fleet

FLEET_NAME = os.environ.get("GPUFLEET_TEST_OPERATOR_FLEET", "test-op")


@pytest.fixture(scope="session")
def op_fleet() -> Iterator[clusters.RunningFleet]:
    fleet = load_fleet(DEFAULT_FLEET)
    for running in bring_up(fleet, FLEET_NAME, str(DEFAULT_FLEET)):
        register(fleet, running, "gpufleet-system")
        yield running


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
