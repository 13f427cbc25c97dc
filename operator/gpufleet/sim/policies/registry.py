"""Policies by name, as the CLI and the benchmarks ask for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gpufleet.sim.jobs import Job
from gpufleet.sim.policies.base import Policy
from gpufleet.sim.policies.gpufleet import GpufleetPolicy
from gpufleet.sim.policies.kueue import KueueLikePolicy
from gpufleet.sim.policies.packing import best_fit, fifo_first_fit


def _gpufleet(jobs: Sequence[Job], min_runtime: float | None) -> Policy:
    return GpufleetPolicy(
        class_blind=not any(j.classes for j in jobs), min_runtime_seconds=min_runtime
    )


POLICIES: dict[str, Callable[[Sequence[Job], float | None], Policy]] = {
    "gpufleet": _gpufleet,
    "fifo-first-fit": lambda _, __: fifo_first_fit(),
    "best-fit": lambda _, __: best_fit(),
    "kueue-like": lambda _, __: KueueLikePolicy(),
}


def make(
    names: Sequence[str], jobs: Sequence[Job], min_runtime: float | None = None
) -> list[Policy]:
    """`min_runtime`: seconds before gpufleet may preempt a workload (its queues' setting;
    None: the API's default, gpufleet.core.fairness.MIN_RUNTIME_SECONDS)."""
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"policy: unknown {', '.join(unknown)} (known: {', '.join(POLICIES)})")
    return [POLICIES[n](jobs, min_runtime) for n in names]
