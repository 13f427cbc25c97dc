"""Re-timing a trace to a target offered load.

A raw openb timeline loads the fleet under 1%, which makes every policy look alike.
Following the trace's own advice, jobs keep their sizes and runtimes but arrive as a
seeded Poisson process, so every run and every policy sees the same arrivals.

Offered load is measured where the metrics measure allocation: over the arrival window
[first arrival, last arrival], the GPUs the jobs would hold if each started the moment
it arrived, divided by capacity. Runtimes are heavy-tailed (a few pods live for months),
so a rate derived from mean work would put most of that work far past the window; the
rate is instead solved for (by bisection: the offered load falls as arrivals spread out)
so that the load inside the window is the target.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from gpufleet.sim.jobs import Trace

FloatArray = npt.NDArray[np.float64]

MIN_MEAN_GAP = 1.0
"""Seconds between arrivals, on average, below which re-timing refuses: closer arrivals
fall inside one scheduling cycle and the trace stops being a process in time."""


def offered_load(
    arrivals: FloatArray, runtimes: FloatArray, gpus: FloatArray, capacity: int
) -> float:
    """GPU-seconds the jobs would use inside [first, last arrival] over capacity x window."""
    start, end = float(arrivals.min()), float(arrivals.max())
    window = end - start
    if window <= 0:
        return float(gpus.sum()) / capacity
    inside = np.minimum(runtimes, end - arrivals)
    return float((gpus * inside).sum()) / (capacity * window)


def poisson_retime(
    trace: Trace, capacity: int, load: float, seed: int = 0, max_runtime: float | None = None
) -> Trace:
    """Every job once, in a seeded random order, at exponential inter-arrival times."""
    if capacity <= 0:
        raise ValueError(f"capacity: must be > 0 (got {capacity})")
    if max_runtime is not None and max_runtime <= 0:
        raise ValueError(f"max_runtime: must be > 0 (got {max_runtime})")
    if len(trace.jobs) < 2:
        return trace
    rng = np.random.default_rng(seed)
    jobs = [trace.jobs[i] for i in rng.permutation(len(trace.jobs))]
    if max_runtime is not None:
        jobs = [replace(j, runtime=min(j.runtime, max_runtime)) for j in jobs]
    runtimes = np.array([j.runtime for j in jobs], dtype=np.float64)
    gpus = np.array([j.gpus for j in jobs], dtype=np.float64)
    gaps = rng.exponential(1.0, size=len(jobs))
    gaps[0] = 0.0
    unit = np.cumsum(gaps)  # arrivals at rate 1; the rate only rescales them
    # Arrivals closer than MIN_MEAN_GAP on average would collapse into one instant: the
    # load reachable at that gap is the ceiling (offered load falls as arrivals spread).
    ceiling = offered_load(unit * MIN_MEAN_GAP, runtimes, gpus, capacity)
    if not 0 < load <= ceiling:
        raise ValueError(
            f"load: must be in (0, {ceiling:.3f}]: the most this trace reaches on"
            f" {capacity} GPUs with arrivals {MIN_MEAN_GAP:g} s apart on average"
            f" (it asks {gpus.sum():.0f} GPUs in all; got {load})"
        )
    lo, hi = np.log(MIN_MEAN_GAP), np.log(1e12)  # log of the mean gap, in seconds
    for _ in range(200):
        mid = (lo + hi) / 2
        if offered_load(unit * np.exp(mid), runtimes, gpus, capacity) > load:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9:
            break
    times = unit * np.exp((lo + hi) / 2)
    retimed = tuple(
        replace(j, id=i, arrival=float(t)) for i, (j, t) in enumerate(zip(jobs, times, strict=True))
    )
    return replace(
        trace, jobs=retimed, source=f"{trace.source} (Poisson, load {load}, seed {seed})"
    )
