"""What a replay is judged by (definitions in docs/simulator.md).

All time averages are over the same horizon for every policy: from the first to the
last arrival (or, when every job arrives at once, up to the makespan lower bound), so
a policy cannot look better by finishing late.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from gpufleet.sim.engine import RunResult
from gpufleet.sim.jobs import Job

FloatArray = npt.NDArray[np.float64]


class PolicyMetrics(BaseModel):
    policy: str
    jobs: int
    completed: int
    unschedulable: int
    stalled: int
    capacity_gpus: int
    horizon_seconds: float
    allocation_mean: float
    allocation_bound: float
    wait_mean: float
    wait_p99: float
    jct_mean: float
    jct_p99: float
    makespan: float
    makespan_lower_bound: float
    jain_fairness: float
    queue_share: dict[str, float]
    queue_fair_share: dict[str, float]
    queue_wait_mean: dict[str, float]
    fragmented_gpus: float
    idle_gpus_while_waiting: float
    preemptions: int
    max_evictions_per_job: int
    jobs_evicted_more_than_once: int
    lost_gpu_hours: float
    gpu_hours: float
    wall_seconds: float


def p99(values: FloatArray) -> float:
    """Nearest rank: the smallest value with at least 99% of the values at or below it."""
    if values.size == 0:
        return 0.0
    return float(np.percentile(values, 99, method="inverted_cdf"))


def makespan_lower_bound(jobs: list[Job], capacity: int) -> float:
    """No schedule ends before a job's arrival plus its runtime, nor before the work that
    arrives from some moment on could pass through the whole fleet after that moment."""
    if not jobs:
        return 0.0
    t0 = min(j.arrival for j in jobs)
    ordered = sorted(jobs, key=lambda j: j.arrival)
    arrivals = np.array([j.arrival for j in ordered])
    work = np.array([j.gpus * j.runtime for j in ordered])
    work_from = np.cumsum(work[::-1])[::-1]  # work arriving at or after each job
    fluid = float(np.max(arrivals + work_from / capacity))
    single = max(j.arrival + j.runtime for j in ordered)
    return max(fluid, single) - t0


def offered_in(jobs: list[Job], start: float, end: float, capacity: int) -> float:
    """GPU-time the jobs would use in [start, end) had each started on arrival, / capacity."""
    if end <= start:
        return 0.0
    used = sum(
        j.gpus * max(0.0, min(j.arrival + j.runtime, end) - max(j.arrival, start)) for j in jobs
    )
    return used / (capacity * (end - start))


def _durations(times: FloatArray, start: float, end: float) -> FloatArray:
    following = np.append(times[1:], np.inf)
    spans: FloatArray = np.clip(np.minimum(following, end) - np.maximum(times, start), 0.0, None)
    return spans


def horizon(jobs: list[Job], capacity: int) -> tuple[float, float]:
    if not jobs:
        return 0.0, 0.0
    start = min(j.arrival for j in jobs)
    end = max(j.arrival for j in jobs)
    if end <= start:
        end = start + makespan_lower_bound(jobs, capacity)
    return start, end


def jain(values: list[float]) -> float:
    """(sum x)^2 / (n sum x^2): 1 when all equal, 1/n when one takes everything."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or not np.any(x):
        return 1.0
    return float(x.sum() ** 2 / (x.size * np.square(x).sum()))


def compute(result: RunResult) -> PolicyMetrics:
    capacity = result.fleet.total_gpus
    never = {j.id for j in result.unschedulable}
    runnable = [o.job for o in result.outcomes if o.job.id not in never]
    start, end = horizon(runnable, capacity)
    tl = result.timeline
    dt = _durations(tl.times, start, end)
    span = max(end - start, 1e-12)
    done = [o for o in result.outcomes if o.end is not None]
    waits = np.array([o.waited for o in done], dtype=np.float64)
    jcts = np.array([(o.end or 0.0) - o.job.arrival for o in done], dtype=np.float64)
    last_end = max((o.end or 0.0) for o in done) if done else start
    queue_alloc = (tl.queue_allocated * dt[:, None]).sum(axis=0)
    queue_fair = (tl.queue_fair * dt[:, None]).sum(axis=0)
    ratios = [float(a / f) for a, f in zip(queue_alloc, queue_fair, strict=True) if f > 0]
    waiting = ~np.isnan(tl.fragmented)
    waited_time = float(dt[waiting].sum())

    def while_waiting(series: FloatArray) -> float:
        if waited_time <= 0:
            return 0.0
        return float((series[waiting] * dt[waiting]).sum() / waited_time)

    names = [q.name for q in result.queues]
    queue_waits: dict[str, list[float]] = {n: [] for n in names}
    for o in done:
        queue_waits[o.job.queue].append(o.waited)
    return PolicyMetrics(
        policy=result.policy,
        jobs=len(result.outcomes),
        completed=len(done),
        unschedulable=len(result.unschedulable),
        stalled=len(result.stalled),
        capacity_gpus=capacity,
        horizon_seconds=end - start,
        allocation_mean=float((tl.allocated * dt).sum() / (capacity * span)),
        allocation_bound=min(1.0, offered_in(runnable, start, end, capacity)),
        wait_mean=float(waits.mean()) if waits.size else 0.0,
        wait_p99=p99(waits),
        jct_mean=float(jcts.mean()) if jcts.size else 0.0,
        jct_p99=p99(jcts),
        makespan=last_end - start,
        makespan_lower_bound=makespan_lower_bound(runnable, capacity),
        jain_fairness=jain(ratios),
        queue_share=dict(zip(names, (queue_alloc / (capacity * span)).tolist(), strict=True)),
        queue_fair_share=dict(zip(names, (queue_fair / (capacity * span)).tolist(), strict=True)),
        queue_wait_mean={n: float(np.mean(w)) if w else 0.0 for n, w in queue_waits.items()},
        fragmented_gpus=while_waiting(tl.fragmented),
        idle_gpus_while_waiting=while_waiting(tl.idle_while_waiting),
        preemptions=result.preemptions,
        max_evictions_per_job=max((o.preempted for o in result.outcomes), default=0),
        jobs_evicted_more_than_once=sum(1 for o in result.outcomes if o.preempted > 1),
        lost_gpu_hours=sum(o.lost_gpu_seconds for o in result.outcomes) / 3600,
        # All work done: each completed run, plus the runs evictions threw away.
        gpu_hours=sum(o.job.gpus * o.job.runtime + o.lost_gpu_seconds for o in done) / 3600,
        wall_seconds=result.wall_seconds,
    )
