"""One comparison: the same trace, fleet and queues replayed under several policies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpufleet.sim.engine import RunResult, replay
from gpufleet.sim.fleet import SimFleet
from gpufleet.sim.jobs import Trace
from gpufleet.sim.metrics import PolicyMetrics, compute
from gpufleet.sim.policies.registry import make
from gpufleet.sim.tenants import QueueSpec


@dataclass(frozen=True)
class Comparison:
    trace: Trace
    fleet: SimFleet
    queues: tuple[QueueSpec, ...]
    results: list[RunResult]
    metrics: list[PolicyMetrics]

    @property
    def wall_seconds(self) -> float:
        return sum(r.wall_seconds for r in self.results)


def compare(
    trace: Trace,
    fleet: SimFleet,
    queues: Sequence[QueueSpec],
    policies: Sequence[str],
    cycle_seconds: float = 0.0,
    progress: Callable[[str, int], None] | None = None,
    min_runtime: float | None = None,
    max_wait: float | None = None,
) -> Comparison:
    """`progress(policy, events done)` is called as the replays advance."""
    results = []
    for policy in make(policies, trace.jobs, min_runtime, max_wait):

        def step(done: int, name: str = policy.name) -> None:
            if progress is not None:
                progress(name, done)

        results.append(replay(trace, fleet, queues, policy, step, cycle_seconds))
    return Comparison(trace, fleet, tuple(queues), results, [compute(r) for r in results])
