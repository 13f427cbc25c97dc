"""Property tests: the invariants of docs/architecture.md over random fleets, queue
trees and workload mixes, through many successive cycles with arrivals,
completions and evictions; the reference cycle agrees with the fast one."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

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
from gpufleet.core import Queue, Snapshot, Workload, schedule
from gpufleet.core.fairness import accumulate, recent_evictions
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
    # The state the operator keeps across cycles: decayed usage and fair usage, the
    # reclaim clocks, and (on the workloads) when each was evicted.
    queues: dict[str, Queue] = {q.name: q for q in fleet.queues}
    for cycle in range(data.draw(st.integers(1, 8), label="cycles")):
        now += 30.0
        pending += data.draw(arrivals(fleet, f"c{cycle}", now), label="arrivals")
        if running:
            done = data.draw(st.sets(st.sampled_from([w.key for w in running])), label="done")
            running = [w for w in running if w.key not in done]
        snap = Snapshot.build(
            fleet.sites, fleet.pools, fleet.nodes, queues.values(), running + pending, now
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
        for key in evicted:
            # The invariant of the eviction cap: never more than the cap in a window.
            w = by_key[key]
            queue = queues[w.queue]
            if queue.max_evictions is not None:
                times = (*w.eviction_times, now)
                assert recent_evictions(times, now, queue.eviction_window_seconds) <= (
                    queue.max_evictions
                ), (key, times)
        pending = [w for w in pending if w.key not in admitted]
        pending += [requeue(by_key[k], now) for k in sorted(evicted)]
        queues = {
            name: replace(
                q,
                usage={
                    c: accumulate(q.usage.get(c, 0.0), a, 30.0, 600.0)
                    for c, a in result.allocated[name].items()
                },
                fair_usage={
                    c: accumulate(q.fair_usage.get(c, 0.0), f, 30.0, 600.0)
                    for c, f in result.fair_shares[name].items()
                },
                starved_since=(
                    (now if q.starved_since is None else q.starved_since)
                    if name in result.starved
                    else None
                ),
            )
            for name, q in queues.items()
        }
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


@given(fleet=contended_fleets(), data=st.data())
def test_the_wait_bound_counts_from_the_last_eviction(fleet, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    """Work that arrived long ago but was evicted less than the bound ago is not at its
    bound: the cycle decides as if no queue had one. Counted from the arrival, the bound
    would hand straight back what reclaim had just taken (docs/scheduling.md)."""
    bound, then, now = 600.0, 5_000.0, 10_000.0
    queues = [replace(q, max_wait_seconds=bound) for q in fleet.queues]
    first = data.draw(contended_workloads(fleet, "c0", then), label="first wave")
    placed = schedule(Snapshot.build(fleet.sites, fleet.pools, fleet.nodes, queues, first, then))
    by_key = {w.key: w for w in first}
    running = [start(by_key[a.workload], a.site, a.pool, a.nodes, then) for a in placed.admissions]
    waiting = []
    for w in data.draw(contended_workloads(fleet, "c1", then + 1.0), label="evicted"):
        ago = data.draw(st.floats(0.0, bound - 1.0), label="evicted ago")
        waiting.append(replace(w, eviction_times=(then + 2.0, now - ago)))

    def decide(qs: list[Queue]) -> tuple[object, ...]:
        snap = Snapshot.build(fleet.sites, fleet.pools, fleet.nodes, qs, running + waiting, now)
        r = schedule(snap)
        ref = schedule_reference(snap)
        assert (ref.admissions, ref.evictions, ref.queue_order) == (
            r.admissions,
            r.evictions,
            r.queue_order,
        )
        return (r.admissions, r.evictions, r.queue_order)

    unbounded = [replace(q, max_wait_seconds=float("inf")) for q in queues]
    assert decide(queues) == decide(unbounded)


@given(fleet=contended_fleets(), data=st.data())
def test_reclaim_never_takes_what_the_wait_bound_started(fleet, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    """Running work that started only once it had waited its queue's bound is never a
    reclaim victim of a workload that has not waited its own (check_invariants),
    whatever else reclaim takes; the reference agrees. Evicting it would restart the
    wait the bound had just ended."""
    bound, then, now = 600.0, 2_000.0, 10_000.0
    queues = [replace(q, max_wait_seconds=bound) for q in fleet.queues]
    first = data.draw(contended_workloads(fleet, "c0", then), label="first wave")
    placed = schedule(Snapshot.build(fleet.sites, fleet.pools, fleet.nodes, queues, first, then))
    by_key = {w.key: w for w in first}
    running = []
    for a in placed.admissions:
        waited = data.draw(st.sampled_from([0.0, 100.0, bound, 2 * bound]), label="waited")
        running.append(start(by_key[a.workload], a.site, a.pool, a.nodes, then + waited))
    event(
        f"started by the bound: {sum(w.placement.started_at - then >= bound for w in running if w.placement)}"
    )
    # The second wave has waited nothing or twice its bound (then it may reclaim anything).
    arrived = data.draw(st.sampled_from([now, now - 2 * bound]), label="second wave arrived")
    waiting = data.draw(contended_workloads(fleet, "c1", arrived), label="second wave")
    snap = Snapshot.build(fleet.sites, fleet.pools, fleet.nodes, queues, running + waiting, now)
    result = schedule(snap)
    check_invariants(snap, result)
    ref = schedule_reference(snap)
    assert (ref.admissions, ref.evictions, ref.queue_order) == (
        result.admissions,
        result.evictions,
        result.queue_order,
    )
    event(f"reclaimed: {sum(e.reason == 'Reclaimed' for e in result.evictions) > 0}")
