"""Rules about change (CEL transition rules) and status, on a real API server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api.builders import Obj, Server, api_error, first_example, unique

pytestmark = pytest.mark.cluster

PLACEMENT = {
    "site": "onprem-fra",
    "pool": "fra-h100",
    "epoch": 1,
    "replicas": [{"index": i, "node": f"fra-h100-{i}"} for i in range(16)],
    "admittedAt": "2026-11-28T12:00:00Z",
}


@pytest.fixture
def created(server: Server, namespace: str) -> Iterator[Any]:
    """Create objects for real (a factory), deleting them afterwards."""
    made: list[Obj] = []

    def create(kind: str, name: str | None = None) -> Obj:
        obj = first_example(kind, name)
        obj["metadata"]["name"] = unique(kind.lower())
        if kind == "Workload":
            obj["metadata"]["namespace"] = namespace
        server.create(obj)
        made.append(obj)
        return obj

    yield create
    for obj in made:
        server.delete(obj)


def refused(server: Server, obj: Obj, body: Obj, *, status: bool = False) -> str:
    exc = server.rejection(lambda: server.patch(obj, body, status=status, dry_run=True))
    assert exc.status == 422, api_error(exc)
    return api_error(exc)


def test_site_jurisdiction_is_immutable(server: Server, created: Any) -> None:
    site = created("Site")
    message = refused(server, site, {"spec": {"jurisdiction": "FR", "regions": ["EU"]}})
    assert "spec.jurisdiction is immutable once set" in message
    server.patch(site, {"spec": {"powerBudgetKw": 100}}, dry_run=True)  # other fields may change


def test_pool_site_is_immutable(server: Server, created: Any) -> None:
    pool = created("GpuPool")
    assert "spec.site is immutable" in refused(server, pool, {"spec": {"site": "elsewhere"}})


def test_workload_queue_and_residency_change_freely_while_pending(
    server: Server, created: Any
) -> None:
    workload = created("Workload")
    server.patch(workload, {"status": {"phase": "Pending"}}, status=True)
    server.patch(
        workload, {"spec": {"queue": "nlp", "residency": {"regions": ["EEA"]}}}, dry_run=True
    )


@pytest.mark.parametrize("phase", ["Admitted", "Running", "Preempted"])
def test_workload_queue_and_residency_are_immutable_once_admitted(
    phase: str, server: Server, created: Any
) -> None:
    workload = created("Workload")
    server.patch(workload, {"status": {"phase": phase}}, status=True)

    message = refused(server, workload, {"spec": {"queue": "nlp"}})
    assert "spec.queue is immutable once the workload is admitted" in message
    message = refused(server, workload, {"spec": {"residency": {"regions": ["EEA"]}}})
    assert "spec.residency is immutable once the workload is admitted" in message
    message = refused(server, workload, {"spec": {"residency": None}})
    assert "spec.residency is immutable" in message
    server.patch(workload, {"spec": {"priority": 5}}, dry_run=True)  # the rest may change


def test_placement_is_immutable_once_set_but_may_be_cleared(server: Server, created: Any) -> None:
    workload = created("Workload")
    server.patch(
        workload, {"status": {"phase": "Admitted", "epoch": 1, "placement": PLACEMENT}}, status=True
    )

    message = refused(
        server, workload, {"status": {"placement": {"site": "factory-osl"}}}, status=True
    )
    assert "status.placement is immutable once set" in message
    message = refused(
        server,
        workload,
        {"status": {"placement": {"replicas": [{"index": 0, "node": "x"}]}}},
        status=True,
    )
    assert "status.placement is immutable once set" in message

    # Preempted and requeued: the placement is cleared, then a new one may be set.
    server.patch(
        workload, {"status": {"phase": "Pending", "placement": None, "epoch": 1}}, status=True
    )
    again = {**PLACEMENT, "site": "factory-osl", "pool": "osl-h200", "epoch": 2}
    server.patch(
        workload, {"status": {"phase": "Admitted", "epoch": 2, "placement": again}}, status=True
    )
    assert server.get(workload)["status"]["placement"]["site"] == "factory-osl"


def test_epoch_never_decreases(server: Server, created: Any) -> None:
    workload = created("Workload")
    server.patch(workload, {"status": {"epoch": 3}}, status=True)
    assert "status.epoch must never decrease" in refused(
        server, workload, {"status": {"epoch": 2}}, status=True
    )
    server.patch(workload, {"status": {"epoch": 4}}, status=True, dry_run=True)


@pytest.mark.parametrize(
    ("kind", "status", "field"),
    [
        (
            "GpuPool",
            {"nodesReady": 5, "nodesTotal": 4},
            "status.nodesReady must be <= status.nodesTotal",
        ),
        ("GpuPool", {"fragmentation": 1.5}, "status.fragmentation"),
        ("GpuPool", {"free": -1}, "status.free"),
        ("Site", {"connection": {"state": "Flaky"}}, "status.connection.state"),
        ("Site", {"powerInUseKw": -3}, "status.powerInUseKw"),
        ("Queue", {"totals": {"fairShare": -1}}, "status.totals.fairShare"),
        (
            "Workload",
            {
                "conditions": [
                    {
                        "type": "Admitted",
                        "status": "True",
                        "reason": "not camel",
                        "lastTransitionTime": "2026-11-28T12:00:00Z",
                    }
                ]
            },
            "status.conditions[0].reason",
        ),
        (
            "Workload",
            {
                "conditions": [
                    {
                        "type": "Admitted",
                        "status": "Maybe",
                        "reason": "Quota",
                        "lastTransitionTime": "2026-11-28T12:00:00Z",
                    }
                ]
            },
            "status.conditions[0].status",
        ),
        (
            "Workload",
            {
                "conditions": [
                    {
                        "type": "Admitted",
                        "status": "True",
                        "reason": "Quota",
                        "lastTransitionTime": "2026-11-28T12:00:00Z",
                    },
                    {
                        "type": "Admitted",
                        "status": "False",
                        "reason": "Quota",
                        "lastTransitionTime": "2026-11-28T12:00:00Z",
                    },
                ]
            },
            "status.conditions[1]",
        ),
        (
            "Workload",
            {
                "conditions": [
                    {
                        "type": "Admitted",
                        "status": "True",
                        "reason": "Quota",
                        "lastTransitionTime": "yesterday",
                    }
                ]
            },
            "status.conditions[0].lastTransitionTime",
        ),
        ("Workload", {"phase": "Sleeping"}, "status.phase"),
        # A list where a time belongs: the API server's own type check misses it.
        ("Workload", {"startedAt": ["2026-11-28T12:00:00Z"]}, "status.startedAt"),
        (
            "Workload",
            {"verdicts": [{"site": "x", "rule": "residency", "message": "m"}]},
            "status.verdicts[0].rule",
        ),
    ],
)
def test_status_is_validated_too(
    kind: str, status: Obj, field: str, server: Server, created: Any
) -> None:
    obj = created(kind)
    assert field in refused(server, obj, {"status": status}, status=True)
