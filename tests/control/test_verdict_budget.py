"""Explaining 100,000 waiting workloads is spread over cycles, new ones first."""

from __future__ import annotations

from typing import Any

from gpufleet.control.loop import SchedulingLoop
from gpufleet.observed.cache import FleetCache


class _Result:
    def __init__(self, keys: list[str]) -> None:
        self.verdicts = {k: [] for k in keys}


def _loop(budget: int) -> SchedulingLoop:
    return SchedulingLoop(FleetCache(), None, None, origin="gpufleet", verdict_budget=budget)  # type: ignore[arg-type]


def _bodies(keys: list[str], explained: set[str]) -> dict[str, dict[str, Any]]:
    return {k: {"status": {"verdicts": [{"rule": "X"}]} if k in explained else {}} for k in keys}


def test_everything_is_explained_when_within_the_budget() -> None:
    keys = [f"ns/w{i}" for i in range(5)]
    chosen = _loop(10)._verdicts_to_explain(_Result(keys), _bodies(keys, set()), {"ns/w1"})  # type: ignore[arg-type]
    assert chosen == ["ns/w0", "ns/w2", "ns/w3", "ns/w4"]


def test_new_workloads_first_then_the_others_take_turns() -> None:
    keys = [f"ns/w{i:02d}" for i in range(10)]
    explained = set(keys[:8])
    loop = _loop(4)
    result, bodies = _Result(keys), _bodies(keys, explained)
    first = loop._verdicts_to_explain(result, bodies, set())  # type: ignore[arg-type]
    assert first[:2] == ["ns/w08", "ns/w09"]
    seen = set(first)
    for _ in range(4):
        seen |= set(loop._verdicts_to_explain(result, bodies, set()))  # type: ignore[arg-type]
    assert seen == set(keys)
