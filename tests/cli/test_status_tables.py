"""The tables of `gpufleet status`, built straight from objects as the API lists them:
what each cell says when a status is missing or partial. The command end to end, on
complete objects: test_inspect.py."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from gpufleet.cli.inspect import pool_table, queue_table, site_table, verdict_table, workload_table


def cells(table: Table) -> list[list[str]]:
    """The body rows of a table, as the strings the builder put in each cell."""
    return [list(row) for row in zip(*(list(c.cells) for c in table.columns), strict=True)]


def headers(table: Table) -> list[str]:
    return [str(c.header) for c in table.columns]


def site(name: str, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"type": "CloudZone", "jurisdiction": "FR", **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def test_a_site_without_status_shows_an_unknown_connection_and_no_capacity() -> None:
    t = site_table([site("zone-par")])
    assert t.title == "sites"
    assert headers(t) == [
        "site", "type", "jurisdiction", "connection", "schedulable", "power kW (budget)",
        "capacity",
    ]  # fmt: skip
    assert cells(t) == [["zone-par", "CloudZone", "FR", "? ()", "True", "0 (∞)", "-"]]


def test_a_site_lists_each_class_it_holds_and_says_when_it_is_cordoned() -> None:
    status = {
        "connection": {"state": "Disconnected", "reason": "LeaseExpired"},
        "powerInUseKw": 3.5,
        "capacity": [
            {"acceleratorClass": "nvidia-h100", "capacity": 64, "allocated": 8},
            {"acceleratorClass": "nvidia-l4", "capacity": 16, "allocated": 0},
        ],
    }
    t = site_table([site("zone-par", status, schedulable=False, powerBudgetKw=40)])
    assert cells(t) == [
        ["zone-par", "CloudZone", "FR", "Disconnected (LeaseExpired)", "False", "3.5 (40)",
         "8/64 nvidia-h100, 0/16 nvidia-l4"],
    ]  # fmt: skip


def test_pools_and_queues_without_status_show_question_marks() -> None:
    pool = {"metadata": {"name": "par-l4"}, "spec": {"site": "zone-par", "acceleratorClass": "l4"}}
    t = pool_table([pool, {**pool, "status": {"nodesReady": 2, "free": 0}}])
    assert (t.title, len(t.columns)) == ("pools", 8)
    assert cells(t) == [
        ["par-l4", "zone-par", "l4", "?/?", "?", "?", "?", "?"],
        ["par-l4", "zone-par", "l4", "2/?", "?", "?", "0", "?"],
    ]
    queue = {"metadata": {"name": "team"}, "spec": {"parent": "dept"}}
    t = queue_table([queue, {**queue, "status": {"admittedWorkloads": 0}}])
    assert (t.title, len(t.columns)) == ("queues", 8)
    assert cells(t) == [
        ["team", "dept", "?", "?", "?", "?", "?", "?"],
        ["team", "dept", "?", "?", "?", "?", "0", "?"],
    ]


def test_workloads_are_sorted_and_show_at_most_three_verdicts() -> None:
    verdicts = [{"site": f"s{i}", "rule": f"Rule{i}"} for i in range(4)]
    workloads = [
        {"metadata": {"namespace": "b", "name": "a"}, "spec": {"queue": "q"}},
        {
            "metadata": {"namespace": "a", "name": "z"},
            "spec": {"queue": "q", "replicas": 2, "acceleratorClasses": ["x", "y"]},
            "status": {"phase": "Pending", "verdicts": [{"rule": "QueueStopped"}, *verdicts]},
        },
    ]
    t = workload_table(workloads)
    assert t.title == "workloads"
    assert cells(t) == [
        ["a/z", "q", "2×1 x/y", "Pending", "-", "fleet: QueueStopped; s0: Rule0; s1: Rule1"],
        ["b/a", "q", "1×1 ", "Pending", "-", ""],
    ]


def test_verdicts_name_the_fleet_when_no_site_is_given() -> None:
    t = verdict_table(
        [
            {"site": "zone-par", "rule": "NotEntitled", "message": "m", "nearestChange": "n"},
            {"rule": "QueueStopped", "message": "stopped"},
        ]
    )
    assert t.title == "per-site verdicts"
    assert cells(t) == [
        ["zone-par", "NotEntitled", "m", "n"],
        ["(fleet)", "QueueStopped", "stopped", ""],
    ]
