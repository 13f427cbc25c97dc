"""Policies by name, as the CLI and the benchmarks ask for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from gpufleet.sim.jobs import Job
from gpufleet.sim.policies.base import Policy
from gpufleet.sim.policies.gpufleet import FairnessSettings, GpufleetPolicy
from gpufleet.sim.policies.kueue import KueueLikePolicy
from gpufleet.sim.policies.packing import best_fit, fifo_first_fit


def _gpufleet(jobs: Sequence[Job], min_runtime: float | None, max_wait: float | None) -> Policy:
    settings = FairnessSettings()
    if max_wait is not None:
        settings = replace(settings, max_wait_seconds=max_wait)
    return GpufleetPolicy(
        class_blind=not any(j.classes for j in jobs),
        min_runtime_seconds=min_runtime,
        settings=settings,
    )


POLICIES: dict[str, Callable[[Sequence[Job], float | None, float | None], Policy]] = {
    "gpufleet": _gpufleet,
    "fifo-first-fit": lambda _, __, ___: fifo_first_fit(),
    "best-fit": lambda _, __, ___: best_fit(),
    "kueue-like": lambda _, __, ___: KueueLikePolicy(),
}


def make(
    names: Sequence[str],
    jobs: Sequence[Job],
    min_runtime: float | None = None,
    max_wait: float | None = None,
) -> list[Policy]:
    """`min_runtime`: seconds before gpufleet may preempt a workload (its queues' setting;
    None: the API's default, gpufleet.core.fairness.MIN_RUNTIME_SECONDS). `max_wait`: the
    queues' wait bound (`maxWaitSeconds`; None: the API's default, MAX_WAIT_SECONDS)."""
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"policy: unknown {', '.join(unknown)} (known: {', '.join(POLICIES)})")
    if max_wait is not None and not max_wait > 0:
        raise ValueError(f"max-wait: must be > 0 seconds (got {max_wait})")
    return [POLICIES[n](jobs, min_runtime, max_wait) for n in names]
