"""Discrete-event replay: arrivals, starts, completions and preemptions.

At every instant where something happens, completions are applied first (they free
capacity), then arrivals; the policy then decides once on the resulting state. The
engine checks every decision (capacity, eligibility, one site per gang) so a policy
bug fails loudly instead of producing flattering numbers. A preempted job restarts
from the beginning when it is placed again and keeps its original arrival for ordering.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gpufleet.sim.fairshare import fair_split
from gpufleet.sim.fleet import SimFleet
from gpufleet.sim.jobs import Job, Trace
from gpufleet.sim.placement import Allocation, Free, fits_empty
from gpufleet.sim.policies.base import ClusterState, Decision, PendingView, Policy, Running, Shape
from gpufleet.sim.tenants import QueueSpec

FloatArray = npt.NDArray[np.float64]
# At one instant: nodes come online and completions free capacity, then arrivals join,
# then the policy decides.
_ONLINE, _COMPLETION, _ARRIVAL, _DECIDE = -1, 0, 1, 2


class PolicyError(RuntimeError):
    """A policy returned a decision that breaks the fleet's rules."""


@dataclass(slots=True)
class Outcome:
    job: Job
    first_start: float | None = None
    end: float | None = None
    waited: float = 0.0
    preempted: int = 0
    lost_gpu_seconds: float = 0.0  # runs thrown away by evictions (restarts from zero)


@dataclass(frozen=True, slots=True)
class Segment:
    """One placement of a job: from its start until it completed or was evicted.

    Histories (allocation per site, class and queue over time) are rebuilt from these;
    a job still running when the replay ends has `end` = inf.
    """

    run: Running
    end: float
    completed: bool


@dataclass(frozen=True)
class Timeline:
    """Step functions: each value holds from its time until the next one."""

    times: FloatArray
    allocated: FloatArray
    queue_allocated: FloatArray  # [time, queue]
    queue_fair: FloatArray  # [time, queue]
    fragmented: FloatArray  # free GPUs no pending job can use; NaN when nothing waits
    idle_while_waiting: FloatArray  # all free GPUs; NaN when nothing waits


@dataclass
class RunResult:
    policy: str
    fleet: SimFleet
    queues: tuple[QueueSpec, ...]
    outcomes: list[Outcome]
    timeline: Timeline
    unschedulable: list[Job] = field(default_factory=list)
    stalled: list[Job] = field(default_factory=list)
    preemptions: int = 0
    wall_seconds: float = 0.0
    segments: list[Segment] = field(default_factory=list)


class _Recorder:
    def __init__(self, fleet: SimFleet, queues: Sequence[QueueSpec]) -> None:
        self.fleet = fleet
        self.shares = [q.share for q in queues]
        self.rows: list[tuple[float, float, float, float]] = []
        self.queue_alloc: list[list[float]] = []
        self.queue_fair: list[list[float]] = []
        self.saturated: tuple[float, float] = (np.nan, np.nan)

    def record(
        self,
        now: float,
        free: Free,
        used: list[int],
        demand: list[int],
        shapes: Counter[Shape],
        decided: bool,
    ) -> None:
        """Snapshot the state at `now`; the fleet counts as saturated only after a decision
        left jobs waiting, so GPUs freed between two cycles are not called fragmentation."""
        capacity = self.fleet.total_gpus
        idle = float(free.gpus.sum())
        if not shapes:
            frag = waiting_idle = np.nan
        elif not decided:
            frag, waiting_idle = self.saturated
        else:
            usable = np.zeros(free.gpus.shape, dtype=np.bool_)
            for classes, residency, per, cpu, mem in _least_demanding(shapes):
                usable |= (
                    self.fleet.eligible(classes, residency)
                    & (free.gpus >= per)
                    & (free.cpu >= cpu)
                    & (free.memory >= mem)
                )
            frag, waiting_idle = float(free.gpus[~usable].sum()), idle
        if decided:
            self.saturated = (frag, waiting_idle)
        row = (now, capacity - idle, frag, waiting_idle)
        if self.rows and self.rows[-1][0] == now:
            self.rows.pop()
            self.queue_alloc.pop()
            self.queue_fair.pop()
        self.rows.append(row)
        self.queue_alloc.append([float(u) for u in used])
        self.queue_fair.append(fair_split(capacity, self.shares, [float(d) for d in demand]))

    def timeline(self) -> Timeline:
        rows = np.array(self.rows, dtype=np.float64).reshape(-1, 4)
        n = len(self.shares)
        return Timeline(
            times=rows[:, 0],
            allocated=rows[:, 1],
            queue_allocated=np.array(self.queue_alloc, dtype=np.float64).reshape(-1, n),
            queue_fair=np.array(self.queue_fair, dtype=np.float64).reshape(-1, n),
            fragmented=rows[:, 2],
            idle_while_waiting=rows[:, 3],
        )


def replay(
    trace: Trace,
    fleet: SimFleet,
    queues: Sequence[QueueSpec],
    policy: Policy,
    progress: Callable[[int], None] | None = None,
    cycle_seconds: float = 0.0,
    online_at: dict[int, float] | None = None,
) -> RunResult:
    """Replay `trace` on `fleet` under `policy`; `progress` gets the number of events done.

    With `cycle_seconds` 0 the policy decides at every instant where something happened;
    otherwise at the next multiple of `cycle_seconds`, like an operator's scheduling loop
    that batches what happened since its last cycle (the same ticks for every policy).

    `online_at` maps node indices to the time they join (a what-if expansion); until then
    such a node has no free accelerators.
    """
    if cycle_seconds < 0:
        raise ValueError(f"cycle_seconds: must be >= 0 (got {cycle_seconds})")
    run = _Replay(trace, fleet, tuple(queues), policy, cycle_seconds)
    for node, when in (online_at or {}).items():
        if not 0 <= node < len(fleet.nodes) or when < 0:
            raise ValueError(f"online_at: node {node} at {when}: no such node or negative time")
        if when > 0:
            run.free.gpus[node] = 0
            heapq.heappush(run.heap, (when, _ONLINE, node, 0))
    return run.run(progress)


class _Replay:
    def __init__(
        self,
        trace: Trace,
        fleet: SimFleet,
        queues: tuple[QueueSpec, ...],
        policy: Policy,
        cycle_seconds: float,
    ) -> None:
        self.cycle = cycle_seconds
        self.next_decide: float | None = None
        self.qindex = {q.name: i for i, q in enumerate(queues)}
        for job in trace.jobs:
            if job.queue not in self.qindex:
                raise ValueError(f"job {job.name!r}: queue {job.queue!r} is not one of the queues")
        self.jobs = {j.id: j for j in trace.jobs}
        if len(self.jobs) != len(trace.jobs):
            raise ValueError("trace: job ids must be unique")
        self.fleet = fleet
        self.queues = queues
        self.policy = policy
        self.outcomes = {j.id: Outcome(j) for j in trace.jobs}
        self.free = Free.of(fleet)
        views = [a.view() for a in (self.free.gpus, self.free.cpu, self.free.memory)]
        for view in views:
            view.flags.writeable = False
        self.frozen_free = Free(*views)
        self.running: dict[int, Running] = {}
        self.attempt: dict[int, int] = {}
        self.pending: dict[int, Job] = {}
        self.by_queue: dict[str, dict[int, Job]] = {q.name: {} for q in queues}
        self.shapes: Counter[Shape] = Counter()
        self.since: dict[int, float] = {}
        self.used = [0] * len(queues)
        self.demand = [0] * len(queues)
        self.feasible: dict[Shape, bool] = {}
        self.recorder = _Recorder(fleet, queues)
        self.result = RunResult(policy.name, fleet, queues, [], self.recorder.timeline())
        self.heap: list[tuple[float, int, int, int]] = [
            (j.arrival, _ARRIVAL, j.id, 0) for j in trace.jobs
        ]
        heapq.heapify(self.heap)

    def run(self, progress: Callable[[int], None] | None) -> RunResult:
        started = time.perf_counter()
        heap = self.heap
        events = 0
        dirty = False  # something happened that the policy has not yet seen
        while heap:
            now = heap[0][0]
            changed = decide = False
            while heap and heap[0][0] == now:
                _, kind, job_id, number = heapq.heappop(heap)
                if kind == _DECIDE:
                    decide = True
                    self.next_decide = None
                    continue
                if kind == _ONLINE:
                    self.free.gpus[job_id] = self.fleet.capacity[job_id]  # job_id holds the node
                    changed = True
                    continue
                events += 1
                if kind == _COMPLETION:
                    changed |= self._complete(job_id, number, now)
                else:
                    changed |= self._arrive(self.jobs[job_id], now)
            dirty |= changed
            if dirty and not decide:
                tick = math.ceil(now / self.cycle) * self.cycle if self.cycle > 0 else now
                if tick <= now:
                    decide = True
                elif self.next_decide is None:
                    self.next_decide = tick
                    heapq.heappush(heap, (tick, _DECIDE, -1, 0))
            decided = False
            if decide and dirty:
                # Nothing waits: no policy here admits or evicts without a pending job.
                if self.pending:
                    self._decide(now)
                    decided = True
                dirty = False
            if changed or decided:
                self.recorder.record(now, self.free, self.used, self.demand, +self.shapes, decided)
            if progress is not None:
                progress(events)
        result = self.result
        result.stalled = list(self.pending.values())
        result.segments.extend(Segment(run, math.inf, False) for run in self.running.values())
        result.outcomes = list(self.outcomes.values())
        result.timeline = self.recorder.timeline()
        result.wall_seconds = time.perf_counter() - started
        return result

    def _decide(self, now: float) -> None:
        state = ClusterState(
            now,
            self.fleet,
            self.queues,
            self.frozen_free,
            self.running,
            {q.name: self.used[i] for i, q in enumerate(self.queues)},
        )
        view = PendingView(self.pending, self.by_queue, self.shapes)
        self._apply(self.policy.schedule(state, view), now)

    def _complete(self, job_id: int, number: int, now: float) -> bool:
        if self.attempt.get(job_id) != number or job_id not in self.running:
            return False  # that attempt was preempted: its completion never happens
        run = self.running.pop(job_id)
        self._release(run)
        self.result.segments.append(Segment(run, now, True))
        self.demand[self.qindex[run.job.queue]] -= run.job.gpus
        self.outcomes[job_id].end = now
        return True

    def _arrive(self, job: Job, now: float) -> bool:
        ok = self.feasible.get(job.shape)
        if ok is None:
            ok = self.feasible[job.shape] = fits_empty(self.fleet, job)
        if not ok:
            # It could never run here; queueing it would only block strict-FIFO queues forever.
            self.result.unschedulable.append(job)
            return False
        self._enqueue(job, now, requeue=False)
        self.demand[self.qindex[job.queue]] += job.gpus
        return True

    def _enqueue(self, job: Job, now: float, requeue: bool) -> None:
        self.pending[job.id] = job
        self.by_queue[job.queue][job.id] = job
        if requeue:
            # Keep arrival order; preemptions are rare, so re-sorting here is cheap enough.
            for store in (self.pending, self.by_queue[job.queue]):
                ordered = sorted(store.values(), key=lambda j: (j.arrival, j.id))
                store.clear()
                store.update((j.id, j) for j in ordered)
        self.shapes[job.shape] += 1
        self.since[job.id] = now

    def _release(self, run: Running) -> None:
        self.free.take(run.job, run.alloc, sign=-1)
        self.used[self.qindex[run.job.queue]] -= run.job.gpus

    def _apply(self, decision: Decision, now: float) -> None:
        name = self.policy.name
        for job_id in decision.evict:
            run = self.running.pop(job_id, None)
            if run is None:
                raise PolicyError(f"{name}: evicted job {job_id} is not running")
            self._release(run)
            self.result.segments.append(Segment(run, now, False))
            self.attempt[job_id] += 1
            outcome = self.outcomes[job_id]
            outcome.preempted += 1
            outcome.lost_gpu_seconds += run.job.gpus * (now - run.start)
            self.result.preemptions += 1
            self._enqueue(run.job, now, requeue=True)
        for job, alloc in decision.admit:
            if job.id not in self.pending:
                raise PolicyError(f"{name}: admitted job {job.name!r} is not pending")
            _check(name, self.fleet, job, alloc, self.free)
            self.free.take(job, alloc)
            del self.pending[job.id]
            del self.by_queue[job.queue][job.id]
            self.shapes[job.shape] -= 1
            self.used[self.qindex[job.queue]] += job.gpus
            self.running[job.id] = Running(job, now, alloc)
            outcome = self.outcomes[job.id]
            outcome.waited += now - self.since.pop(job.id)
            if outcome.first_start is None:
                outcome.first_start = now
            number = self.attempt.get(job.id, -1) + 1
            self.attempt[job.id] = number
            heapq.heappush(self.heap, (now + job.runtime, _COMPLETION, job.id, number))


def _least_demanding(
    shapes: Counter[Shape],
) -> list[tuple[frozenset[str], frozenset[str], int, int, int]]:
    """Per (classes, residency) of the pending jobs, the (accelerators, CPU, memory) per
    replica that no other pending replica undercuts on all three: a free GPU some
    pending job could use is on a node where one of these fits."""
    by_key: dict[tuple[frozenset[str], frozenset[str]], set[tuple[int, int, int]]] = {}
    for (_, per, classes, residency, cpu, mem), count in shapes.items():
        if count > 0:
            by_key.setdefault((classes, residency), set()).add((per, cpu, mem))
    out = []
    for (classes, residency), needs in by_key.items():
        arr = np.array(sorted(needs), dtype=np.int64)
        # below[o, n]: need o asks no more than need n of anything (o != n: sets are unique).
        below = np.all(arr[:, None, :] <= arr[None, :, :], axis=2) & ~np.eye(len(arr), dtype=bool)
        for per, cpu, mem in arr[~below.any(axis=0)].tolist():
            out.append((classes, residency, per, cpu, mem))
    return out


def _check(policy: str, fleet: SimFleet, job: Job, alloc: Allocation, free: Free) -> None:
    if len(alloc) != job.replicas or any(count != job.per_replica for _, count in alloc):
        raise PolicyError(f"{policy}: job {job.name!r}: allocation {alloc} is not the whole gang")
    nodes = np.array([node for node, _ in alloc], dtype=np.int64)
    if len(set(fleet.node_site[nodes].tolist())) != 1:
        raise PolicyError(f"{policy}: job {job.name!r}: gang spans more than one site")
    if not fleet.eligible(job.classes, job.residency)[nodes].all():
        raise PolicyError(f"{policy}: job {job.name!r}: placed on a node of a forbidden class/site")
    replicas = np.bincount(nodes, minlength=free.gpus.size)
    if (
        (replicas * job.per_replica > free.gpus).any()
        or (replicas * job.cpu_milli > free.cpu).any()
        or (replicas * job.memory_mib > free.memory).any()
    ):
        raise PolicyError(f"{policy}: job {job.name!r}: node over capacity")
