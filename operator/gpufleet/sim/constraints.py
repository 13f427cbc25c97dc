"""What-if: GPU-model constraints on a trace whose jobs name none (`--constrain-models`).

openb's default and gpushare lists leave `gpu_spec` empty, so every pod takes any GPU
and the gpufleet policy sees the fleet as one class. Real fleets mix models and some
work needs one of them. This draws, with a seed of its own, which jobs are constrained
and to what: each job that names no model is constrained with probability `fraction`,
to one model drawn in proportion to its GPUs in the fleet and, half the time, a second
one drawn the same way from the rest (openb's gpuspec lists name one model or a pair).
Only models with a pool whose nodes could hold all the job's replicas at once (GPUs,
CPU, memory; a gang lands in one pool) are drawn, so no job becomes unplaceable.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gpufleet.sim.fleet import SimFleet
from gpufleet.sim.jobs import Job, Trace

_STREAM = 0x6D6F64656C  # keeps this draw apart from the re-timing's, which shares the seed


def constrain_models(trace: Trace, fleet: SimFleet, fraction: float, seed: int) -> Trace:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"constrain-models: must be between 0 and 1 (got {fraction})")
    classes = sorted({p.accelerator_class for p in fleet.pools})
    gpus = dict.fromkeys(classes, 0)
    # Per pool, each node's GPUs, CPU and memory.
    nodes_of: list[list[tuple[int, int, int]]] = [[] for _ in fleet.pools]
    for i, node in enumerate(fleet.nodes):
        gpus[fleet.pools[node.pool].accelerator_class] += node.gpus
        cpu, mem = int(fleet.cpu_capacity[i]), int(fleet.memory_capacity[i])
        nodes_of[node.pool].append((node.gpus, cpu, mem))
    pools_of = {c: [p for p, pool in enumerate(fleet.pools) if pool.accelerator_class == c]
                for c in classes}  # fmt: skip
    rng = np.random.default_rng([seed, _STREAM])
    out: list[Job] = []
    for job in trace.jobs:
        # Three draws per job whatever happens, so one job's outcome moves no other's.
        pick, first, second = rng.random(3)
        if job.classes or pick >= fraction:
            out.append(job)
            continue
        fits = [c for c in classes if any(_holds(nodes_of[p], job) for p in pools_of[c])]
        if not fits:
            out.append(job)
            continue
        chosen = [_draw(fits, gpus, first)]
        rest = [c for c in fits if c != chosen[0]]
        if rest and second < 0.5:
            chosen.append(_draw(rest, gpus, second * 2))
        out.append(replace(job, classes=frozenset(chosen)))
    return replace(trace, jobs=tuple(out))


def _holds(nodes: list[tuple[int, int, int]], job: Job) -> bool:
    """Whether the pool's empty nodes hold all of the job's replicas."""
    room = 0
    for g, cpu, mem in nodes:
        room += min(
            g // job.per_replica,
            cpu // job.cpu_milli if job.cpu_milli else g,
            mem // job.memory_mib if job.memory_mib else g,
        )
    return room >= job.replicas


def _draw(candidates: list[str], gpus: dict[str, int], u: float) -> str:
    """The candidate at quantile `u` of their GPU counts (inverse transform)."""
    weights = np.array([gpus[c] for c in candidates], dtype=np.float64)
    edges = np.cumsum(weights) / weights.sum()
    return candidates[min(int(np.searchsorted(edges, u, side="right")), len(candidates) - 1)]
