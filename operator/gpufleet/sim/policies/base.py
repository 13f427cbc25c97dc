"""The small interface between the replay engine and a scheduling policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gpufleet.sim.fleet import SimFleet
from gpufleet.sim.jobs import Job
from gpufleet.sim.placement import Allocation, Free
from gpufleet.sim.tenants import QueueSpec


@dataclass(frozen=True, slots=True)
class Running:
    job: Job
    start: float
    alloc: Allocation


@dataclass(frozen=True, slots=True)
class ClusterState:
    """What a policy may look at; it must not change any of it."""

    now: float
    fleet: SimFleet
    queues: tuple[QueueSpec, ...]
    free: Free
    running: dict[int, Running]  # in start order (newest last)
    queue_used: Mapping[str, int]


Shape = tuple[int, int, frozenset[str], frozenset[str], int, int]
"""replicas, accelerators, classes and residency, CPU and memory per replica (`Job.shape`)."""


@dataclass(frozen=True, slots=True)
class PendingView:
    """Pending jobs, kept by the engine; read-only for policies.

    `jobs` and each `by_queue[q]` iterate in arrival order (a requeued job keeps its
    original arrival); `shapes` counts pending jobs per shape (see `Job.shape`).
    """

    jobs: Mapping[int, Job]
    by_queue: Mapping[str, Mapping[int, Job]]
    shapes: Mapping[Shape, int]


@dataclass(slots=True)
class Decision:
    """Evictions are applied first, then admissions in order; the engine checks both."""

    admit: list[tuple[Job, Allocation]] = field(default_factory=list)
    evict: list[int] = field(default_factory=list)


class Policy(Protocol):
    name: str

    def schedule(self, state: ClusterState, pending: PendingView) -> Decision:
        """Decide at `state.now` which pending jobs start where, and what to evict."""
        ...
