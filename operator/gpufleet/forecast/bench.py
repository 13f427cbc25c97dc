"""Benchmark: fit, backtest and reconcile thousands of series (`gpufleet forecast bench`).

Series are generated, not simulated (a replay of that many queues would dominate the
time): a hierarchy of sites x classes x queues whose bottom series grow, follow a weekly
cycle of their own amplitude and carry autocorrelated noise, like demand of many queues.

Besides the time it reports what the time depends on: the machine (CPU model, cores),
its load average before and after, the seconds of each phase, and the peak memory of
the whole process tree (this process and statsforecast's workers: their summed
proportional set size, sampled from /proc every 0.2 s) - one run over 5,000 series once grew past 19 GB.
"""

from __future__ import annotations

import math
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gpufleet.forecast.history import Key
from gpufleet.forecast.series import LEVELS, Daily

FloatArray = npt.NDArray[np.float64]
SAMPLE_SECONDS = 0.2


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
    return Daily(dates, keys, values, np.full_like(values, float(level.max()) * 4), "true")


def _tree_pss(root: int) -> int:
    """Proportional set size in bytes of `root` and all its descendants (Linux /proc).

    PSS, not RSS: statsforecast's workers are forked and share the parent's pages, which
    RSS would count once per process."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


@dataclass
class PeakMemory:
    """Samples the process tree's resident memory in a thread while in a `with` block."""

    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, _tree_pss(os.getpid()))

    def __enter__(self) -> PeakMemory:
        self.peak = _tree_pss(os.getpid())
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def machine() -> dict[str, object]:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


@dataclass(frozen=True)
class BenchResult:
    series: int
    bottom: int
    days: int
    origins: int
    seconds: float
    phases: dict[str, float]
    peak_memory_bytes: int  # summed PSS of the process tree
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    machine: dict[str, object]
    n_jobs: int
    method: str
    scores: dict[str, dict[str, dict[str, float]]]
    # Median over a level's series and origins of MAE / seasonal-naive MAE at 13 weeks.
    median_ratio_vs_snaive: dict[str, float]


def run(total: int, days: int, n_jobs: int | None, origins: int) -> BenchResult:
    """Fit and backtest a hierarchy of about `total` series (bottom plus aggregates)."""
    from gpufleet.forecast import models, pipeline

    # 1 fleet + 4 sites + 12 site-classes above the queues.
    bottom = max(12, total - 17)
    daily = synthetic(bottom, days)
    load_before = os.getloadavg()
    phases: dict[str, float] = {}
    started = time.perf_counter()
    with PeakMemory() as memory:
        # Parameters estimated once per series at the first origin and kept
        # (refit=False) for the later ones; the final forecast refits on all the history.
        fc = pipeline.run(daily, 91, "auto", origins, n_jobs, refit=False, timings=phases)
    seconds = time.perf_counter() - started
    bt = fc.backtest
    scores = {lv: {h: s.as_dict() for h, s in by_h.items()} for lv, by_h in bt.scores.items()}
    errors = np.abs(bt.actual - bt.point).mean(axis=2)
    naive = np.abs(bt.actual - bt.baselines["snaive"]).mean(axis=2)
    ratios = {}
    for lv in LEVELS:
        idx = fc.hierarchy.level_index(lv)
        r = errors[:, idx] / np.maximum(naive[:, idx], 1e-9)
        ratios[lv] = round(float(np.median(r)), 4)
    return BenchResult(
        len(fc.hierarchy.names),
        bottom,
        days,
        origins,
        seconds,
        {k: round(v, 1) for k, v in phases.items()},
        memory.peak,
        load_before,
        os.getloadavg(),
        machine(),
        models.jobs(n_jobs),
        fc.method,
        scores,
        ratios,
    )
