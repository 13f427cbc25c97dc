"""Queues for traces without tenants: a stable assignment and deserved shares."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpufleet.sim.jobs import Job, Trace


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue of the simulation; `share` is its deserved fraction of the fleet."""

    name: str
    share: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("queue name: must not be empty")
        if not 0 < self.share <= 1:
            raise ValueError(f"queue {self.name!r}: share must be in (0, 1] (got {self.share})")


def default_queues(count: int, shares: Sequence[float] | None = None) -> tuple[QueueSpec, ...]:
    """`count` queues named q0..qN-1, equal shares unless given (normalised to sum to 1)."""
    if count < 1:
        raise ValueError(f"queues: count must be >= 1 (got {count})")
    weights = list(shares) if shares else [1.0] * count
    if len(weights) != count:
        raise ValueError(f"shares: expected {count} values, one per queue (got {len(weights)})")
    if any(w <= 0 for w in weights):
        raise ValueError(f"shares: every share must be > 0 (got {weights})")
    total = sum(weights)
    return tuple(QueueSpec(f"q{i}", w / total) for i, w in enumerate(weights))


def queue_index(name: str, count: int) -> int:
    """Stable across runs and machines (unlike hash()), so results are reproducible."""
    return zlib.crc32(name.encode()) % count


def assign_queues(trace: Trace, queues: Sequence[QueueSpec]) -> Trace:
    """Give every job without a queue one of `queues`, by a stable hash of its name."""
    names = [q.name for q in queues]
    jobs: list[Job] = [
        j if j.queue else replace(j, queue=names[queue_index(j.name, len(names))])
        for j in trace.jobs
    ]
    return replace(trace, jobs=tuple(jobs))


def queues_for(trace: Trace, shares: dict[str, float] | None = None) -> tuple[QueueSpec, ...]:
    """Queues named in a trace; equal shares unless `shares` gives weights by name."""
    names = sorted({j.queue for j in trace.jobs if j.queue})
    weights = dict.fromkeys(names, 1.0)
    for name, weight in (shares or {}).items():
        if name not in weights:
            raise ValueError(f"shares: queue {name!r} does not occur in the trace")
        weights[name] = weight
    total = sum(weights.values())
    return tuple(QueueSpec(n, weights[n] / total) for n in names)
