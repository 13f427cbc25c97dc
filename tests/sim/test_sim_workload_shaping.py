"""Tenant assignment, Poisson re-timing and the fleet slice used for load replays."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from gpufleet.sim.arrivals import offered_load, poisson_retime
from gpufleet.sim.fleet import subsample
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
