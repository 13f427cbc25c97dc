"""Small traces whose metrics are worked out by hand (see the comments for the arithmetic)."""

from __future__ import annotations

import math

import pytest

from gpufleet.sim.engine import replay
from gpufleet.sim.metrics import compute, jain, makespan_lower_bound, p99
from gpufleet.sim.policies.gpufleet import FairnessSettings, GpufleetPolicy
from gpufleet.sim.policies.kueue import KueueLikePolicy
from gpufleet.sim.policies.packing import best_fit, fifo_first_fit
from gpufleet.sim.tenants import QueueSpec
from sim.builders import job, one_site, trace

ONE_QUEUE = (QueueSpec("q0", 1.0),)
TWO_QUEUES = (QueueSpec("q0", 0.5), QueueSpec("q1", 0.5))

# Nodes of 4 and 2 GPUs. A (2 GPUs, 0-10 s), C (4 GPUs, arrives at 1 s for 5 s),
# D (1 GPU, arrives at 12 s for 1 s). First-fit puts A on the 4-GPU node, so C
# must wait for A; best-fit puts A on the 2-GPU node and C starts at once.
PACKING = trace(job(0, 0, 10, 2), job(1, 1, 5, 4), job(2, 12, 1, 1))


def test_first_fit_strands_the_big_job_behind_a_small_one() -> None:
    m = compute(replay(PACKING, one_site(4, 2), ONE_QUEUE, fifo_first_fit()))
    # Horizon is [0, 12]: 2 GPUs for 10 s, then C's 4 GPUs for 2 s = 28 GPU-s of 6 x 12.
    assert m.allocation_mean == pytest.approx(28 / 72)
    # Offered in [0, 12]: A 2 x 10 + C 4 x 5 = 40 GPU-s.
    assert m.allocation_bound == pytest.approx(40 / 72)
    assert m.wait_mean == pytest.approx(3.0)  # waits 0, 9, 0
    assert m.wait_p99 == pytest.approx(9.0)
    assert m.jct_mean == pytest.approx(25 / 3)  # 10, 14, 1
    assert m.jct_p99 == pytest.approx(14.0)
    assert m.makespan == pytest.approx(15.0)  # C ends at 15
    assert m.makespan_lower_bound == pytest.approx(13.0)  # D cannot end before 12 + 1
    # While C waits (1-10 s) 2 + 2 GPUs are free but no node has 4: all four stranded.
    assert m.fragmented_gpus == pytest.approx(4.0)
    assert m.idle_gpus_while_waiting == pytest.approx(4.0)
    assert m.jain_fairness == pytest.approx(1.0)
    assert m.preemptions == 0


def test_best_fit_reaches_the_allocation_bound() -> None:
    m = compute(replay(PACKING, one_site(4, 2), ONE_QUEUE, best_fit()))
    # [0,1) 2 GPUs, [1,6) 6, [6,10) 2, [10,12) 0: 40 GPU-s, the whole offered load.
    assert m.allocation_mean == pytest.approx(40 / 72)
    assert m.allocation_mean == pytest.approx(m.allocation_bound)
    assert m.wait_mean == 0.0
    assert m.jct_mean == pytest.approx(16 / 3)  # 10, 5, 1
    assert m.jct_p99 == pytest.approx(10.0)
    assert m.makespan == pytest.approx(13.0)
    assert m.makespan == pytest.approx(m.makespan_lower_bound)
    assert m.fragmented_gpus == 0.0


# One 4-GPU node, two queues with equal shares. q0 fills the node with four 1-GPU
# jobs at 0 s (10 s each); q1 asks for 1 GPU at 1 s and again at 10 s.
GREEDY = trace(
    *(job(i, 0, 10, 1, "q0") for i in range(4)),
    job(4, 1, 10, 1, "q1"),
    job(5, 10, 1, 1, "q1"),
)


def test_fifo_lets_one_queue_starve_the_other() -> None:
    m = compute(replay(GREEDY, one_site(4), TWO_QUEUES, fifo_first_fit()))
    # Over [0, 10]: fair shares are q0 4 GPUs for 1 s then 3 for 9 s (31), q1 1 for 9 s (9).
    # q0 holds 4 GPUs for 10 s (40), q1 nothing: ratios 40/31 and 0, so Jain = 1/2.
    assert m.queue_fair_share == pytest.approx({"q0": 31 / 40, "q1": 9 / 40})
    assert m.queue_share == pytest.approx({"q0": 1.0, "q1": 0.0})
    assert m.jain_fairness == pytest.approx(0.5)
    assert m.wait_mean == pytest.approx(9 / 6)
    assert m.queue_wait_mean == pytest.approx({"q0": 0.0, "q1": 4.5})  # 9 s and 0 s
    assert m.preemptions == 0


def test_kueue_like_reclaims_borrowed_quota_for_the_queue_under_nominal() -> None:
    result = replay(GREEDY, one_site(4), TWO_QUEUES, KueueLikePolicy())
    m = compute(result)
    # q1 (nominal 2, using 0) evicts the newest q0 job at 1 s; q0 then holds 3 GPUs.
    assert m.preemptions == 1
    assert m.queue_share == pytest.approx({"q0": 31 / 40, "q1": 9 / 40})
    assert m.jain_fairness == pytest.approx(1.0)
    by_id = {o.job.id: o for o in result.outcomes}
    assert by_id[4].first_start == 1.0
    assert by_id[3].preempted == 1
    # The victim restarts at 10 s (its queue is back under nominal) and runs 10 s again.
    assert by_id[3].end == 20.0
    assert by_id[3].waited == pytest.approx(9.0)
    assert m.jct_mean == pytest.approx(61 / 6)  # 10, 10, 10, 20, 10, 1


# Every time-based rule off: the core reclaims at once, as it did before them.
NO_TIME_RULES = FairnessSettings(
    present_weight_seconds=math.inf,
    wait_credit_seconds=math.inf,
    max_wait_seconds=math.inf,
    min_runtime_seconds=0.0,
    max_evictions=None,
    reclaim_delay_seconds=0.0,
    reclaim_margin=0.0,
)


def test_gpufleet_core_reclaims_for_the_queue_below_its_deserved_share() -> None:
    policy = GpufleetPolicy(class_blind=True, settings=NO_TIME_RULES)
    result = replay(GREEDY, one_site(4), TWO_QUEUES, policy)
    m = compute(result)
    assert m.preemptions == 1
    assert {o.job.id: o for o in result.outcomes}[4].first_start == 1.0
    assert m.jain_fairness == pytest.approx(1.0)
    assert m.completed == 6
    # The victim (1 GPU) had run 1 s when it was evicted; it then runs its 10 s again.
    assert m.lost_gpu_hours == pytest.approx(1 / 3600)
    assert m.gpu_hours == pytest.approx((4 * 10 + 10 + 1 + 1) / 3600)
    assert m.max_evictions_per_job == 1
    assert m.jobs_evicted_more_than_once == 0


def test_gpufleet_defaults_do_not_evict_a_young_job_but_wait_for_it() -> None:
    # With the production defaults (10 min minimum runtime, 15 min reclaim delay) a
    # 10 s job is never worth evicting: q1's job waits for the first completion.
    result = replay(GREEDY, one_site(4), TWO_QUEUES, GpufleetPolicy(class_blind=True))
    m = compute(result)
    assert m.preemptions == 0
    assert m.lost_gpu_hours == 0.0
    assert {o.job.id: o for o in result.outcomes}[4].first_start == 10.0


def test_p99_is_the_nearest_rank() -> None:
    import numpy as np

    values = np.arange(1.0, 201.0)  # 1..200: rank ceil(0.99 x 200) = 198
    assert p99(values) == 198.0


def test_jain_index_of_equal_and_one_sided_allocations() -> None:
    assert jain([2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert jain([3.0, 0.0, 0.0]) == pytest.approx(1 / 3)


def test_makespan_lower_bound_counts_the_work_that_arrives_late() -> None:
    # 10 GPU-s arrive at 5 s on 2 GPUs: nothing ends before 5 + 10/2 = 10 s,
    # later than any single job (5 + 5) or the early job (0 + 1).
    jobs = [job(0, 0, 1, 1), job(1, 5, 5, 1), job(2, 5, 5, 1)]
    assert makespan_lower_bound(jobs, capacity=2) == pytest.approx(10.0)
    assert makespan_lower_bound(jobs, capacity=1) == pytest.approx(15.0)


def test_kueue_like_admitted_jobs_hold_quota_while_they_wait_for_nodes() -> None:
    # Nodes 4 + 2, nominal quota 6. A (2 GPUs) goes first-fit to the 4-GPU node; C (4 GPUs)
    # is admitted by quota but no node has 4 free, so it holds 4 of the quota; D (1 GPU)
    # then exceeds the quota although 4 GPUs are free, and starts only when A ends at 10 s.
    jobs = trace(job(0, 0, 10, 2), job(1, 1, 5, 4), job(2, 2, 1, 1))
    result = replay(jobs, one_site(4, 2), ONE_QUEUE, KueueLikePolicy())
    starts = {o.job.id: o.first_start for o in result.outcomes}
    assert starts == {0: 0.0, 1: 10.0, 2: 10.0}
    fifo = replay(jobs, one_site(4, 2), ONE_QUEUE, fifo_first_fit())
    assert {o.job.id: o.first_start for o in fifo.outcomes} == {0: 0.0, 1: 10.0, 2: 2.0}
