"""Benchmark: fit, backtest and reconcile thousands of series (`gpufleet forecast bench`).

Series are generated, not simulated (a replay of that many queues would dominate the
time): a hierarchy of sites x classes x queues whose bottom series grow, follow a weekly
cycle of their own amplitude and carry autocorrelated noise, like demand of many queues.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpufleet.forecast.history import Key
from gpufleet.forecast.series import Daily

FloatArray = npt.NDArray[np.float64]


def synthetic(bottom: int, days: int, seed: int = 0) -> Daily:
    """`bottom` queue series over 4 sites and 3 classes (plus their aggregates)."""
    rng = np.random.default_rng(seed)
    sites, classes = 4, 3
    per = math.ceil(bottom / (sites * classes))
    keys = tuple(
        Key(f"site{s}", f"class{c}", f"q{q:04d}")
        for s in range(sites)
        for c in range(classes)
        for q in range(per)
    )[:bottom]
    t = np.arange(days, dtype=np.float64)
    level = rng.lognormal(2.0, 1.0, (len(keys), 1))
    growth = rng.uniform(-0.02, 0.15, (len(keys), 1))
    amplitude = rng.uniform(0.0, 0.4, (len(keys), 1))
    trend = (1 + growth) ** (t / 30)
    cycle = 1 + amplitude * np.cos(2 * np.pi * (t - 2.5) / 7)
    noise = np.zeros((len(keys), days))
    shocks = rng.normal(0, 0.08, (len(keys), days))
    for d in range(1, days):  # AR(1): demand wanders, it does not jump back each day
        noise[:, d] = 0.7 * noise[:, d - 1] + shocks[:, d]
    values = np.maximum(level * trend * cycle * (1 + noise), 0.0)
    start = np.datetime64("2025-01-06")
    dates = start + np.arange(days).astype("timedelta64[D]")
    return Daily(dates, keys, values, np.full_like(values, float(level.max()) * 4))


@dataclass(frozen=True)
class BenchResult:
    series: int
    bottom: int
    days: int
    origins: int
    seconds: float
    n_jobs: int
    method: str
    scores: dict[str, dict[str, dict[str, float]]]


def run(total: int, days: int, n_jobs: int | None, origins: int) -> BenchResult:
    """Fit and backtest a hierarchy of about `total` series (bottom plus aggregates)."""
    from gpufleet.forecast import models, pipeline

    # 1 fleet + 4 sites + 12 site-classes above the queues.
    bottom = max(12, total - 17)
    daily = synthetic(bottom, days)
    started = time.perf_counter()
    # Parameters estimated once per series at the first origin and kept (refit=False)
    # for the later ones; the final forecast refits on the whole history.
    fc = pipeline.run(daily, 91, "auto", origins, n_jobs, refit=False)
    seconds = time.perf_counter() - started
    scores = {
        lv: {name: s.as_dict() for name, s in by_h.items()}
        for lv, by_h in fc.backtest.scores.items()
    }
    return BenchResult(
        len(fc.hierarchy.names),
        bottom,
        days,
        origins,
        seconds,
        models.jobs(n_jobs),
        fc.method,
        scores,
    )
