"""Property tests: the invariants of docs/architecture.md over random fleets, queue
trees and workload mixes, through many successive cycles with arrivals,
completions and evictions; the reference cycle agrees with the fast one."""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import event, given
from hypothesis import strategies as st

from core.invariants import check_invariants
from core.strategies import (
    Fleet,
    contended_fleets,
    contended_workloads,
    fleets,
    requeue,
    start,
    workloads,
)
from gpufleet.core import Snapshot, Workload, schedule
from gpufleet.core.reference import schedule_reference

ArrivalStrategy = Callable[[Fleet, str, float], st.SearchStrategy[list[Workload]]]


@given(data=st.data())
def test_invariants_hold_through_successive_cycles(data: st.DataObject) -> None:
    run_cycles(data, data.draw(fleets(), label="fleet"), workloads)


@given(data=st.data())
def test_invariants_hold_under_contention_and_reclaim(data: st.DataObject) -> None:
    run_cycles(data, data.draw(contended_fleets(), label="fleet"), contended_workloads)


def run_cycles(data: st.DataObject, fleet: Fleet, arrivals: ArrivalStrategy) -> None:
    running: list[Workload] = []
    pending: list[Workload] = []
    now = 0.0
    for cycle in range(data.draw(st.integers(1, 8), label="cycles")):
        now += 30.0
        pending += data.draw(arrivals(fleet, f"c{cycle}", now), label="arrivals")
        if running:
            done = data.draw(st.sets(st.sampled_from([w.key for w in running])), label="done")
            running = [w for w in running if w.key not in done]
        snap = Snapshot.build(
            fleet.sites, fleet.pools, fleet.nodes, fleet.queues, running + pending, now
        )
        result = schedule(snap)
        check_invariants(snap, result)

        ref = schedule_reference(snap)
        assert ref.admissions == result.admissions
        assert ref.evictions == result.evictions
        assert ref.queue_order == result.queue_order
        assert ref.allocated == result.allocated

        admitted = {a.workload: a for a in result.admissions}
        assert set(result.verdicts) == {w.key for w in pending} - set(admitted)
        for key in result.verdicts:
            verdicts = result.verdicts[key]
            assert [v.site for v in verdicts] == sorted(s.name for s in fleet.sites)
            assert all(v.rule and v.message for v in verdicts)

        evicted = {e.workload for e in result.evictions}
        for e in result.evictions:
            event(f"eviction: {e.reason}")
        if result.admissions:
            event("cycle with admissions")
        by_key = {w.key: w for w in running + pending}
        pending = [w for w in pending if w.key not in admitted]
        pending += [requeue(by_key[k]) for k in sorted(evicted)]
        running = [w for w in running if w.key not in evicted]
        running += [
            start(by_key[a.workload], a.site, a.pool, a.nodes, now) for a in result.admissions
        ]


@given(fleet=fleets(), data=st.data())
def test_decisions_do_not_depend_on_input_order(fleet, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    work = data.draw(workloads(fleet, "w", 10.0))
    snap = Snapshot.build(fleet.sites, fleet.pools, fleet.nodes, fleet.queues, work, 10.0)
    shuffled = list(work)
    random.Random(data.draw(st.integers(0, 2**16))).shuffle(shuffled)
    nodes = list(fleet.nodes)
    random.Random(1).shuffle(nodes)
    other = Snapshot.build(
        reversed(fleet.sites), reversed(fleet.pools), nodes, reversed(fleet.queues), shuffled, 10.0
    )
    a, b = schedule(snap), schedule(other)
    assert a.admissions == b.admissions
    assert a.evictions == b.evictions
    assert a.queue_order == b.queue_order
