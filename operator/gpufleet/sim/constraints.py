"""What-if: GPU-model constraints on a trace whose jobs name none (`--constrain-models`).

openb's default and gpushare lists leave `gpu_spec` empty, so every pod takes any GPU
and the gpufleet policy sees the fleet as one class. Real fleets mix models and some
work needs one of them. This draws, with a seed of its own, which jobs are constrained
and to what: each job that names no model is constrained with probability `fraction`,
to one model drawn in proportion to its GPUs in the fleet and, half the time, a second
one drawn the same way from the rest (openb's gpuspec lists name one model or a pair).
Only models with a node that could hold one replica of the job (GPUs, CPU, memory)
are drawn, so no job becomes unplaceable.
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
    # Per class, each node's GPUs, CPU and memory: does any hold one replica?
    nodes_of: dict[str, list[tuple[int, int, int]]] = {c: [] for c in classes}
    for i, node in enumerate(fleet.nodes):
        cls = fleet.pools[node.pool].accelerator_class
        gpus[cls] += node.gpus
        cpu, mem = int(fleet.cpu_capacity[i]), int(fleet.memory_capacity[i])
        nodes_of[cls].append((node.gpus, cpu, mem))
    rng = np.random.default_rng([seed, _STREAM])
    out: list[Job] = []
    for job in trace.jobs:
        # Three draws per job whatever happens, so one job's outcome moves no other's.
        pick, first, second = rng.random(3)
        if job.classes or pick >= fraction:
            out.append(job)
            continue
        fits = [c for c in classes if any(_holds(n, job) for n in nodes_of[c])]
        if not fits:
            out.append(job)
            continue
        chosen = [_draw(fits, gpus, first)]
        rest = [c for c in fits if c != chosen[0]]
        if rest and second < 0.5:
            chosen.append(_draw(rest, gpus, second * 2))
        out.append(replace(job, classes=frozenset(chosen)))
    return replace(trace, jobs=tuple(out))


def _holds(node: tuple[int, int, int], job: Job) -> bool:
    g, cpu, mem = node
    return g >= job.per_replica and cpu >= job.cpu_milli and mem >= job.memory_mib


def _draw(candidates: list[str], gpus: dict[str, int], u: float) -> str:
    """The candidate at quantile `u` of their GPU counts (inverse transform)."""
    weights = np.array([gpus[c] for c in candidates], dtype=np.float64)
    edges = np.cumsum(weights) / weights.sum()
    return candidates[min(int(np.searchsorted(edges, u, side="right")), len(candidates) - 1)]
