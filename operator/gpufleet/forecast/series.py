"""Daily demand per (site, class, queue) and the hierarchy that sums it up.

Daily means, not peaks: means add up (the fleet's daily mean is the sum of its queues'),
which is what coherent reconciliation needs; a maximum does not. The weekly cycle stays
visible at daily resolution (season length 7), and a 13-week horizon is 91 steps.

Levels, top-down: `fleet`, `site` (all classes of a site), `site_class`, `queue`
(a queue's demand at one site and class: the bottom series).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from gpufleet.forecast.history import History, Key

FloatArray = npt.NDArray[np.float64]
LEVELS = ("fleet", "site", "site_class", "queue")
Target = Literal["demand", "allocated", "true"]
# A day counts when at least this many of its hours were observed.
MIN_HOURS = 12


@dataclass(frozen=True)
class Daily:
    """Bottom series by day; `capacity` is the site and class's installed capacity."""

    days: npt.NDArray[np.datetime64]
    keys: tuple[Key, ...]
    values: FloatArray  # [key, day]
    capacity: FloatArray  # [key, day]


def daily(history: History, target: Target = "demand") -> Daily:
    """Daily means over whole days; ragged ends are dropped and interior gaps interpolated."""
    if target == "demand":
        hourly = history.demand
    elif target == "allocated":
        hourly = history.allocated
    else:
        if history.demand_true is None:
            raise ValueError("history: no demand_true column (only simulations have one)")
        hourly = history.demand_true
    first = history.start.astype("datetime64[D]")
    # Align to midnight UTC: pad the first partial day with missing hours.
    lead = int((history.start - first.astype("datetime64[s]")) // np.timedelta64(3600, "s"))
    total = lead + history.hours
    n_days = -(-total // 24)
    grid = np.full((len(history.keys), n_days * 24), np.nan)
    grid[:, lead:total] = hourly
    cap = np.full_like(grid, np.nan)
    cap[:, lead:total] = history.capacity
    by_day = grid.reshape(len(history.keys), n_days, 24)
    cap_by_day = cap.reshape(len(history.keys), n_days, 24)
    # A day is observed when the fleet as a whole reported enough of its hours.
    seen = (~np.isnan(by_day)).any(axis=0).sum(axis=1) >= MIN_HOURS
    if not seen.any():
        raise ValueError("history: no day with enough hourly observations")
    lo, hi = int(np.argmax(seen)), n_days - int(np.argmax(seen[::-1]))
    with warnings.catch_warnings():
        # All-NaN slices (missing days, a queue absent from a site) are expected here.
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.nanmean(by_day[:, lo:hi], axis=2)
        capacity = np.nanmax(cap_by_day[:, lo:hi], axis=2)
    values = _interpolate(np.where(seen[lo:hi], values, np.nan))
    values = np.nan_to_num(values, nan=0.0)  # a queue never seen at a site: no demand there
    capacity = _ffill(capacity)
    days = first + np.arange(lo, hi).astype("timedelta64[D]")
    return Daily(days, history.keys, values, capacity)


def _interpolate(values: FloatArray) -> FloatArray:
    out = values.copy()
    x = np.arange(values.shape[1])
    for row in out:
        ok = ~np.isnan(row)
        if ok.any() and not ok.all():
            row[~ok] = np.interp(x[~ok], x[ok], row[ok])
    return out


def _ffill(values: FloatArray) -> FloatArray:
    out = values.copy()
    for row in out:
        last = np.nan
        for i, v in enumerate(row):
            if np.isnan(v):
                row[i] = last
            else:
                last = v
    return np.nan_to_num(out, nan=0.0)


@dataclass(frozen=True)
class Hierarchy:
    """All series top-down; `S` sums the bottom series (keys) into every series."""

    names: tuple[str, ...]
    levels: tuple[str, ...]
    bottom: tuple[Key, ...]
    S: FloatArray  # [series, bottom]

    def level_index(self, level: str) -> npt.NDArray[np.int64]:
        return np.array([i for i, lv in enumerate(self.levels) if lv == level], dtype=np.int64)

    def aggregate(self, bottom_values: FloatArray) -> FloatArray:
        """Every series from the bottom ones ([bottom, ...] -> [series, ...])."""
        return np.tensordot(self.S, bottom_values, axes=(1, 0))


def hierarchy(keys: Sequence[Key]) -> Hierarchy:
    names: list[str] = ["fleet"]
    levels: list[str] = ["fleet"]
    rows: list[FloatArray] = [np.ones(len(keys))]
    sites = sorted({k.site for k in keys})
    site_classes = sorted({(k.site, k.accelerator_class) for k in keys})
    for site in sites:
        names.append(site)
        levels.append("site")
        rows.append(np.array([float(k.site == site) for k in keys]))
    for site, cls in site_classes:
        names.append(f"{site}/{cls}")
        levels.append("site_class")
        rows.append(np.array([float(k.site == site and k.accelerator_class == cls) for k in keys]))
    names.extend(f"{k.site}/{k.accelerator_class}/{k.queue}" for k in keys)
    levels.extend("queue" for _ in keys)
    summing = np.vstack([np.array(rows), np.eye(len(keys))])
    return Hierarchy(tuple(names), tuple(levels), tuple(keys), summing)
