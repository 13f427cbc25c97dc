"""The state of fairness over time survives a restart: the summary writes decayed usage
to Queue status, and translate reads it back, decayed to the time of the cycle."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from gpufleet import core
from gpufleet.control import statuses
from gpufleet.control.statuses import eviction_status
from gpufleet.control.summary import FleetSummary, summarise
from gpufleet.core.fairness import (
    MAX_WAIT_SECONDS,
    USAGE_HALF_LIFE_SECONDS,
    accumulate,
    decay_factor,
    waiting_since,
)
from gpufleet.observed.incremental import IncrementalTranslator
from gpufleet.observed.translate import timestamp, translate

from .builders import World

# Whole seconds: the status stores times as RFC 3339 without fractions.
T0 = 1_800_000_000.0
HALF_LIFE = USAGE_HALF_LIFE_SECONDS


def _cycle(world: World, now: float) -> FleetSummary:
    """One cycle as the loop runs it, with a fresh parse cache (as after a restart)."""
    view = world.cache.view()
    inputs = translate(view, {}, None, now=now)
    snap = core.Snapshot.build(
        inputs.sites, inputs.pools, inputs.nodes, inputs.queues, inputs.workloads, now
    )
    return summarise(view, inputs, core.schedule(snap), now, 90.0)


def _write_status(world: World, name: str, status: dict[str, Any]) -> None:
    """What the status patch does: the cache sees the Queue with its new status."""
    body = copy.deepcopy(world.cache.queues[name])
    body["status"] = status
    body["metadata"]["resourceVersion"] = world.rv()
    world.cache.put_object("Queue", name, body)


def _h100(status: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in status["resources"] if r["acceleratorClass"] == "nvidia-h100")


def _queue(world: World, now: float | None) -> core.Queue:
    inputs = translate(world.cache.view(), {}, None, now=now)
    return next(q for q in inputs.queues if q.name == "q")


def test_queue_status_round_trips_decayed_usage_across_a_restart() -> None:
    w = World(nodes=4).queue("q", ["ns"])
    w.placed("ns", "a", "q", "fra", "h100", ["fra-0"])  # 8 accelerators held throughout

    first = _cycle(w, T0).queue_status["q"]
    # No earlier update: the history starts here, empty.
    assert (_h100(first)["usage"], _h100(first)["fairUsage"]) == (0.0, 0.0)
    assert first["usageUpdatedAt"] == "2027-01-15T08:00:00Z"
    _write_status(w, "q", first)

    second = _cycle(w, T0 + 600).queue_status["q"]
    row = _h100(second)
    # 600 s at 8 accelerators, integrated under the decay; the fair share likewise.
    assert row["usage"] == pytest.approx(accumulate(0.0, 8, 600, HALF_LIFE), abs=1e-3)
    assert row["usage"] == pytest.approx(8 * 600, rel=1e-3)
    assert row["fairUsage"] == pytest.approx(
        accumulate(0.0, row["fairShare"], 600, HALF_LIFE), abs=1e-3
    )
    _write_status(w, "q", second)

    # A restarted operator (new translate, no parse cache) reads the state back: as
    # written when read at the time it was written, decayed when read a day later.
    assert _queue(w, T0 + 600).usage["nvidia-h100"] == pytest.approx(row["usage"])
    later = _queue(w, T0 + 600 + 86_400)
    factor = decay_factor(86_400, HALF_LIFE)
    assert 0.9 < factor < 1.0
    assert later.usage["nvidia-h100"] == pytest.approx(row["usage"] * factor)
    assert later.fair_usage["nvidia-h100"] == pytest.approx(row["fairUsage"] * factor)

    # The next cycle carries on from the written values, not from zero.
    third = _h100(_cycle(w, T0 + 1200).queue_status["q"])
    assert third["usage"] == pytest.approx(accumulate(row["usage"], 8, 600, HALF_LIFE), abs=1e-3)


def test_usage_read_without_a_time_is_taken_as_written() -> None:
    w = World(nodes=2).queue("q", ["ns"])
    _write_status(
        w,
        "q",
        {
            "resources": [
                {
                    "acceleratorClass": "nvidia-h100",
                    "allocated": 0,
                    "fairShare": 0,
                    "usage": 100.0,
                    "fairUsage": 50.0,
                }
            ],
            "usageUpdatedAt": "2027-01-15T08:00:00Z",
        },
    )
    assert _queue(w, None).usage["nvidia-h100"] == 100.0
    # A half-life later both halve: the order they give (usage ÷ fair usage) is the same.
    q = _queue(w, T0 + HALF_LIFE)
    assert q.usage["nvidia-h100"] == pytest.approx(50.0)
    assert q.fair_usage["nvidia-h100"] == pytest.approx(25.0)


def test_starved_since_is_kept_across_cycles_and_read_back() -> None:
    w = World(nodes=1).queue("q", ["ns"], deserved=8).queue("r", ["ns"], deserved=8)
    w.placed("ns", "r1", "r", "fra", "h100", ["fra-0"])
    # Only h100, where r holds every accelerator: q gets nothing, below its fair share (4).
    w.workload("ns", "waiting", "q", replicas=1, acceleratorClasses=["nvidia-h100"])
    for name in ("q", "r"):
        body = copy.deepcopy(w.cache.queues[name])
        body["spec"]["preemption"] = {"reclaimMargin": 0.25}
        body["metadata"]["resourceVersion"] = w.rv()
        w.cache.put_object("Queue", name, body)
    status = _cycle(w, T0).queue_status["q"]
    assert status["starvedSince"] == "2027-01-15T08:00:00Z"
    _write_status(w, "q", status)
    # Still starved later: the clock keeps its start, and translate reads it back.
    again = _cycle(w, T0 + 300).queue_status["q"]
    assert again["starvedSince"] == "2027-01-15T08:00:00Z"
    assert _queue(w, T0 + 300).starved_since == T0


def test_reused_inputs_bring_decayed_usage_to_the_new_cycle() -> None:
    # Nothing changed between two cycles: the incremental translator reuses its Inputs,
    # but time passed, so the usage it hands the core has decayed all the same.
    w = World(nodes=2).queue("q", ["ns"])
    _write_status(
        w,
        "q",
        {
            "resources": [
                {
                    "acceleratorClass": "nvidia-h100",
                    "allocated": 0,
                    "fairShare": 0,
                    "usage": 100.0,
                    "fairUsage": 50.0,
                }
            ],
            "usageUpdatedAt": "2027-01-15T08:00:00Z",
        },
    )
    translator = IncrementalTranslator()
    view = w.cache.view()
    first = translator.translate(view, None, T0)
    assert next(q for q in first.queues if q.name == "q").usage["nvidia-h100"] == 100.0
    again = translator.translate(view, None, T0 + HALF_LIFE)
    assert translator.reused == "all"
    q = next(q for q in again.queues if q.name == "q")
    assert q.usage["nvidia-h100"] == pytest.approx(50.0)
    assert q.fair_usage["nvidia-h100"] == pytest.approx(25.0)
    # The earlier Inputs are not changed (they are shared between cycles).
    assert next(q for q in first.queues if q.name == "q").usage["nvidia-h100"] == 100.0


def test_a_queue_without_fairness_settings_ranks_without_age_and_bounds_the_wait() -> None:
    # The API's defaults: age off (it fights reclaim), the wait bound on (1 h).
    q = _queue(World(nodes=1).queue("q", ["ns"]), T0)
    assert q.wait_credit_seconds == math.inf
    assert q.max_wait_seconds == MAX_WAIT_SECONDS == 3_600.0


def test_an_evicted_workload_waits_again_from_its_eviction_read_back_from_status() -> None:
    # The operator's eviction status (evictionTimes, and the Admitted condition turned
    # False) is what the core reads back: the core's wait and the one the operator
    # reports both begin at the eviction, not at the creation (10:00) an hour earlier.
    w = World(nodes=2).queue("q", ["ns"])
    body = w.placed("ns", "a", "q", "fra", "h100", ["fra-0"])
    evicted_at = timestamp("2026-11-28T11:00:00Z")
    patch = eviction_status(body, core.Eviction("ns/a", "Reclaimed", "ns/b"), evicted_at)
    body = w.workload("ns", "a", "q", status={**body["status"], **patch})
    inputs = translate(w.cache.view(), {}, None, now=evicted_at + 60)
    a = next(x for x in inputs.workloads if x.key == "ns/a")
    assert a.placement is None
    assert a.created_at == timestamp("2026-11-28T10:00:00Z")
    assert waiting_since(a.created_at, a.eviction_times) == evicted_at
    assert statuses.waiting_since(body) == evicted_at
