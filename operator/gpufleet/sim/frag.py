"""The fill-to-saturation experiment of the openb paper (Weng et al., ATC 2023).

Pods drawn from a pod list (seeded, with replacement) arrive in batches, one batch per
scheduling cycle, and never leave; each policy places them as it would. After the
batch in which the GPUs asked reach each level (100%, 105%, ... 130% of capacity), the
GPUs left unallocated are what fragmentation (and, for strict FIFO, head-of-line
blocking) wasted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from pydantic import BaseModel

from gpufleet.sim.engine import replay
from gpufleet.sim.fleet import SimFleet
from gpufleet.sim.jobs import Job, Trace
from gpufleet.sim.policies.base import Policy
from gpufleet.sim.tenants import QueueSpec, assign_queues

NEVER_ENDS = 1e15


class FragLevel(BaseModel):
    level: float
    requested_gpus: int
    unallocated: dict[str, int]


class FragReport(BaseModel):
    fleet: str
    capacity_gpus: int
    pods_drawn: int
    seed: int
    batch: int
    levels: list[FragLevel]
    # Evictions each policy made over the whole fill: pods never end, so a policy that
    # evicts to make room moves the unallocated count by throwing work away.
    evictions: dict[str, int] = {}


def draw(pods: Sequence[Job], capacity: int, top: float, seed: int, batch: int = 1) -> list[Job]:
    """Pods in a seeded random order (with replacement) until `top` x capacity is asked,
    completing the last batch; pod i arrives at second i // batch."""
    if not pods:
        raise ValueError("pod list: no GPU pods to draw from")
    rng = np.random.default_rng(seed)
    out: list[Job] = []
    asked = 0
    while asked < top * capacity or len(out) % batch:
        pod = pods[int(rng.integers(0, len(pods)))]
        out.append(
            replace(
                pod,
                id=len(out),
                name=f"fill-{len(out)}",
                arrival=float(len(out) // batch),
                runtime=NEVER_ENDS,
            )
        )
        asked += pod.gpus
    return out


def fill_experiment(
    pods: Sequence[Job],
    fleet: SimFleet,
    queues: Sequence[QueueSpec],
    policies: Sequence[Policy],
    levels: Sequence[float] = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3),
    seed: int = 0,
    batch: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
) -> FragReport:
    """`batch` pods arrive together before each decision (1 = one by one, as in the paper)."""
    if not levels or any(lv <= 0 for lv in levels):
        raise ValueError(f"levels: must be positive fractions of capacity (got {list(levels)})")
    if batch < 1:
        raise ValueError(f"batch: must be >= 1 (got {batch})")
    capacity = fleet.total_gpus
    jobs = draw(pods, capacity, max(levels), seed, batch)
    trace = assign_queues(Trace(tuple(jobs), "fill"), queues)
    asked = np.cumsum([j.gpus for j in jobs])
    # The batch in which the asked GPUs first reach each level, and all it asked.
    reach = [min(int(np.searchsorted(asked, lv * capacity)), len(jobs) - 1) for lv in levels]
    ticks = [jobs[i].arrival for i in reach]
    asked_by_tick = [int(asked[min((i // batch + 1) * batch, len(jobs)) - 1]) for i in reach]
    unallocated: list[dict[str, int]] = [{} for _ in levels]
    evictions: dict[str, int] = {}
    for policy in policies:

        def step(done: int, name: str = policy.name) -> None:
            if progress is not None:
                progress(name, done, len(jobs))

        result = replay(trace, fleet, queues, policy, progress=step)
        times, allocated = result.timeline.times, result.timeline.allocated
        evictions[policy.name] = result.preemptions
        for k, tick in enumerate(ticks):
            at = int(np.searchsorted(times, tick, side="right")) - 1
            unallocated[k][policy.name] = capacity - int(allocated[max(at, 0)])
    return FragReport(
        fleet=fleet.name,
        capacity_gpus=capacity,
        pods_drawn=len(jobs),
        seed=seed,
        batch=batch,
        levels=[
            FragLevel(level=lv, requested_gpus=a, unallocated=u)
            for lv, a, u in zip(levels, asked_by_tick, unallocated, strict=True)
        ],
        evictions=evictions,
    )
