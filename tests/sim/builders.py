"""Fluent-free little builders for hand-made fleets and traces (sim tests only)."""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.sim.fleet import SimFleet, SimNode, SimPool, SimSite
from gpufleet.sim.jobs import Job, Trace


def one_site(*gpus: int, cls: str = "nvidia-h100") -> SimFleet:
    """One site, one pool, one node per entry of `gpus`."""
    nodes = tuple(SimNode(f"n{i}", 0, g) for i, g in enumerate(gpus))
    return SimFleet("t", (SimSite("s", "DE", ("EU",)),), (SimPool("p", 0, cls),), nodes)


def job(
    i: int,
    arrival: float,
    runtime: float,
    gpus: int,
    queue: str = "q0",
    replicas: int = 1,
    classes: Sequence[str] = (),
    residency: Sequence[str] = (),
) -> Job:
    return Job(
        id=i,
        name=f"j{i}",
        arrival=arrival,
        runtime=runtime,
        replicas=replicas,
        per_replica=gpus,
        classes=frozenset(classes),
        queue=queue,
        residency=frozenset(residency),
    )


def trace(*jobs: Job) -> Trace:
    return Trace(tuple(sorted(jobs, key=lambda j: (j.arrival, j.id))), "hand-made")
