"""Policies by name, as the CLI and the benchmarks ask for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gpufleet.sim.jobs import Job
from gpufleet.sim.policies.base import Policy
from gpufleet.sim.policies.gpufleet import GpufleetPolicy
from gpufleet.sim.policies.kueue import KueueLikePolicy
from gpufleet.sim.policies.packing import best_fit, fifo_first_fit


def _gpufleet(jobs: Sequence[Job]) -> Policy:
    return GpufleetPolicy(class_blind=not any(j.classes for j in jobs))


POLICIES: dict[str, Callable[[Sequence[Job]], Policy]] = {
    "gpufleet": _gpufleet,
    "fifo-first-fit": lambda _: fifo_first_fit(),
    "best-fit": lambda _: best_fit(),
    "kueue-like": lambda _: KueueLikePolicy(),
}


def make(names: Sequence[str], jobs: Sequence[Job]) -> list[Policy]:
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"policy: unknown {', '.join(unknown)} (known: {', '.join(POLICIES)})")
    return [POLICIES[n](jobs) for n in names]
