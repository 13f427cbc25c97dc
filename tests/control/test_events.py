"""Events folded, aggregated and limited as client-go's recorder does, on a fake clock."""

from __future__ import annotations

from typing import Any

from gpufleet.control.events import COMBINED, EventCorrelator, EventRecorder


class Writer:
    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []  # (reason, message)
        self.patched: list[tuple[str, int]] = []  # (name, count)
        self.gone: set[str] = set()

    def event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> str | None:
        self.created.append((reason, message))
        return f"ev{len(self.created)}"

    def patch_event(self, namespace: str, name: str, count: int) -> bool:
        if name in self.gone:
            return False
        self.patched.append((name, count))
        return True


def body(name: str) -> dict[str, Any]:
    return {"kind": "Workload", "metadata": {"namespace": "ns", "name": name, "uid": name}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_event_is_one_event_whose_count_grows() -> None:
    writer, clock = Writer(), Clock()
    rec = EventRecorder(writer, clock=clock)
    for _ in range(5):
        rec.record(body("a"), "Warning", "PodFailed", "replica 0 failed")
        clock.now += 1
    assert writer.created == [("PodFailed", "replica 0 failed")]
    assert writer.patched == [("ev1", 2), ("ev1", 3), ("ev1", 4), ("ev1", 5)]


def test_after_the_window_a_repeat_is_a_new_event() -> None:
    writer, clock = Writer(), Clock()
    rec = EventRecorder(writer, clock=clock)
    rec.record(body("a"), "Normal", "Admitted", "m")
    clock.now = 601
    rec.record(body("a"), "Normal", "Admitted", "m")
    assert len(writer.created) == 2
    assert writer.patched == []


def test_an_event_deleted_meanwhile_is_posted_again() -> None:
    writer, clock = Writer(), Clock()
    rec = EventRecorder(writer, clock=clock)
    rec.record(body("a"), "Normal", "Admitted", "m")
    writer.gone.add("ev1")
    assert rec.record(body("a"), "Normal", "Admitted", "m") == "create"
    assert len(writer.created) == 2


def test_many_similar_events_are_combined_into_one() -> None:
    writer, clock = Writer(), Clock()
    rec = EventRecorder(writer, clock=clock)
    for i in range(15):
        rec.record(body("a"), "Warning", "SiteUnreachable", f"attempt {i}")
        clock.now += 1
    messages = [m for _, m in writer.created]
    assert messages[:10] == [f"attempt {i}" for i in range(10)]
    assert messages[10:] == [COMBINED + "attempt 10"]  # then folded into that one
    assert [c for _, c in writer.patched] == [2, 3, 4, 5]


def test_one_object_cannot_flood_its_namespace() -> None:
    corr = EventCorrelator(aggregate_after=10**6)
    actions = [corr.decide("o", "Normal", "R", f"m{i}", now=0.0).action for i in range(30)]
    assert actions.count("create") == 25
    assert actions[25:] == ["drop"] * 5
    # One token back every 5 minutes.
    assert corr.decide("o", "Normal", "R", "late", now=300.0).action == "create"
    assert corr.decide("o", "Normal", "R", "later", now=300.0).action == "drop"
    # Other objects are not held back by it.
    assert corr.decide("p", "Normal", "R", "m", now=300.0).action == "create"


def test_a_burst_of_admissions_spends_only_the_operators_event_budget() -> None:
    corr = EventCorrelator(qps=20, burst=200)
    created = sum(
        corr.decide(f"w{i}", "Normal", "Admitted", "m", now=i / 100).action == "create"
        for i in range(2000)  # 2,000 workloads admitted in 20 s
    )
    assert abs(created - (200 + 20 * 20)) <= 1  # the burst, then 20 per second
    assert corr.dropped == 2000 - created
