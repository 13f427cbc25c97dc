"""Tenant assignment, Poisson re-timing and the fleet slice used for load replays."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from gpufleet.sim.arrivals import offered_load, poisson_retime
from gpufleet.sim.constraints import constrain_models
from gpufleet.sim.fleet import SimFleet, SimNode, SimPool, SimSite, subsample
from gpufleet.sim.setup import parse_shares
from gpufleet.sim.tenants import assign_queues, default_queues, queue_index, queues_for
from sim.builders import job, one_site, trace


def test_default_queues_normalise_shares() -> None:
    queues = default_queues(3, [2, 1, 1])
    assert [(q.name, q.share) for q in queues] == [("q0", 0.5), ("q1", 0.25), ("q2", 0.25)]
    with pytest.raises(ValueError, match="shares: expected 3 values"):
        default_queues(3, [1, 1])
    with pytest.raises(ValueError, match="shares: every share must be > 0"):
        default_queues(2, [1, 0])


def test_queue_assignment_is_stable_and_keeps_given_queues() -> None:
    jobs = trace(*(job(i, i, 1, 1, queue="") for i in range(200)), job(200, 0, 1, 1, "mine"))
    queues = default_queues(4)
    once = assign_queues(jobs, queues)
    again = assign_queues(jobs, queues)
    assert [j.queue for j in once.jobs] == [j.queue for j in again.jobs]
    assert {j.queue for j in once.jobs if j.id != 200} == {"q0", "q1", "q2", "q3"}
    assert next(j.queue for j in once.jobs if j.id == 200) == "mine"
    # crc32 of the name, not Python's salted hash(): the same on every run and machine.
    assert queue_index("j7", 4) == 1719022813 % 4  # CRC-32 of b"j7"


def test_queues_named_by_a_trace_get_equal_or_given_weights() -> None:
    jobs = trace(job(0, 0, 1, 1, "b"), job(1, 0, 1, 1, "a"))
    assert [(q.name, q.share) for q in queues_for(jobs)] == [("a", 0.5), ("b", 0.5)]
    assert [q.share for q in queues_for(jobs, {"a": 3})] == [0.75, 0.25]
    with pytest.raises(ValueError, match="queue 'c' does not occur"):
        queues_for(jobs, {"c": 1})


def test_shares_parse_by_position_or_by_name() -> None:
    assert parse_shares("0.4,0.6") == ([0.4, 0.6], None)
    assert parse_shares("a=1, b=2") == (None, {"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError, match="shares: expected numbers"):
        parse_shares("a,b")


def test_poisson_retime_hits_the_target_offered_load_and_keeps_the_jobs() -> None:
    jobs = trace(*(job(i, 0, 60 + 7 * (i % 13), 1 + i % 3) for i in range(300)))
    retimed = poisson_retime(jobs, capacity=40, load=0.8, seed=3)
    arrivals = np.array([j.arrival for j in retimed.jobs])
    runtimes = np.array([j.runtime for j in retimed.jobs])
    gpus = np.array([float(j.gpus) for j in retimed.jobs])
    assert offered_load(arrivals, runtimes, gpus, 40) == pytest.approx(0.8, rel=1e-6)
    assert np.all(np.diff(arrivals) >= 0)
    assert Counter((j.name, j.runtime, j.gpus) for j in retimed.jobs) == Counter(
        (j.name, j.runtime, j.gpus) for j in jobs.jobs
    )
    same = poisson_retime(jobs, capacity=40, load=0.8, seed=3)
    assert [j.arrival for j in same.jobs] == list(arrivals)


def test_poisson_retime_refuses_a_load_the_trace_cannot_offer() -> None:
    jobs = trace(job(0, 0, 10, 1), job(1, 5, 10, 1))
    # Two 1-GPU jobs of 10 s on 4 GPUs: with arrivals 1 s apart on average (the closest
    # re-timing goes) they offer at most a quarter of the fleet; the message says so.
    with pytest.raises(ValueError, match=r"load: must be in \(0, 0\.2\d\d\]: the most") as err:
        poisson_retime(jobs, capacity=4, load=0.9)
    reachable = float(str(err.value).split("(0, ")[1].split("]")[0])
    # Just under the reachable maximum works, and the arrivals stay apart in time.
    retimed = poisson_retime(jobs, capacity=4, load=reachable * 0.99)
    assert max(j.arrival for j in retimed.jobs) > 0.5


def test_subsample_keeps_a_share_of_every_pool() -> None:
    fleet = one_site(*([8] * 16))
    half = subsample(fleet, 0.5)
    assert len(half.nodes) == 8
    assert half.total_gpus == 64
    assert len(subsample(fleet, 0.01).nodes) == 1
    with pytest.raises(ValueError, match=r"fleet fraction: must be in \(0, 1\]"):
        subsample(fleet, 0)


def _two_models() -> SimFleet:
    """4 H100 nodes of 8 GPUs and 4 T4 nodes of 2 (one site)."""
    nodes = tuple(SimNode(f"h{i}", 0, 8) for i in range(4)) + tuple(
        SimNode(f"t{i}", 1, 2) for i in range(4)
    )
    pools = (SimPool("h", 0, "nvidia-h100"), SimPool("t", 0, "nvidia-t4"))
    return SimFleet("two", (SimSite("s", "DE", ("EU",)),), pools, nodes)


def test_constraining_models_touches_only_jobs_that_name_none_and_keeps_them_placeable() -> None:
    jobs = trace(
        *(job(i, i, 1, 1 + 7 * (i % 2)) for i in range(400)),
        job(400, 0, 1, 2, classes=["nvidia-t4"]),
        # Gangs of 5 x 2 GPUs: the T4 pool holds only 4 such replicas at once. Fifty of
        # them, so that a draw that let the T4s in would pick them for some.
        *(job(i, 0, 1, 2, replicas=5) for i in range(401, 451)),
    )
    out = constrain_models(jobs, _two_models(), 1.0, seed=3)
    by_id = {j.id: j for j in out.jobs}
    assert by_id[400].classes == frozenset({"nvidia-t4"})
    assert all(by_id[i].classes == frozenset({"nvidia-h100"}) for i in range(401, 451))
    for before in jobs.jobs:
        if before.id >= 400:
            continue
        after = by_id[before.id]
        assert replace(after, classes=frozenset()) == before
        assert 1 <= len(after.classes) <= 2
        if before.per_replica == 8:
            # No T4 node holds 8 GPUs: an 8-GPU job may only be sent to the H100s.
            assert after.classes == frozenset({"nvidia-h100"})
    small = Counter(tuple(sorted(j.classes)) for j in out.jobs[:400] if j.per_replica == 1)
    # Drawn by GPUs (32 H100 against 8 T4), a second model half the time.
    assert small[("nvidia-h100",)] > small[("nvidia-t4",)] > 0
    assert small[("nvidia-h100", "nvidia-t4")] > 0


def test_constraining_models_is_seeded_and_takes_the_share_asked() -> None:
    jobs = trace(*(job(i, i, 1, 1) for i in range(2000)))
    fleet = _two_models()
    once = constrain_models(jobs, fleet, 0.33, seed=1)
    assert once == constrain_models(jobs, fleet, 0.33, seed=1)
    assert once != constrain_models(jobs, fleet, 0.33, seed=2)
    share = sum(bool(j.classes) for j in once.jobs) / len(once.jobs)
    assert 0.30 < share < 0.36
    assert constrain_models(jobs, fleet, 0.0, seed=1) == jobs
    with pytest.raises(ValueError, match=r"constrain-models: must be between 0 and 1 \(got 1.5\)"):
        constrain_models(jobs, fleet, 1.5, seed=1)
