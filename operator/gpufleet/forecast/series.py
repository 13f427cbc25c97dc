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
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from gpufleet.forecast.history import History, Key

FloatArray = npt.NDArray[np.float64]
LEVELS = ("fleet", "site", "site_class", "queue")
Target = Literal["demand", "backlog", "allocated", "true"]
TARGETS: tuple[str, ...] = get_args(Target)
# A day counts when at least this many of its hours were observed.
MIN_HOURS = 12
# Days over which the mean time an admitted accelerator is held is estimated (trailing).
HOLD_WINDOW = 28


@dataclass(frozen=True)
class Daily:
    """Bottom series by day; `capacity` is the site and class's installed capacity."""

    days: npt.NDArray[np.datetime64]
    keys: tuple[Key, ...]
    values: FloatArray  # [key, day]
    capacity: FloatArray  # [key, day]
    # What `values` is: "demand" (offered load, from the admission counts where they were
    # exported), "backlog" (allocated + pending; also `demand` when the history has no
    # admission counts), "allocated" or "true".
    target: str


def _has(series: FloatArray | None) -> bool:
    return series is not None and bool(np.isfinite(series).any())


def daily(history: History, target: Target = "demand") -> Daily:
    """Daily means over whole days; ragged ends are dropped and interior gaps interpolated.

    `demand` is the offered load (`offered_load`) when the history counts admitted
    accelerators, else allocated + pending."""
    if target == "demand" and not _has(history.admitted):
        target = "backlog"
    if target == "true" and history.demand_true is None:
        raise ValueError("history: no demand_true column (only simulations have one)")
    if target == "demand":
        parts = [history.allocated, history.pending]
    elif target == "backlog":
        parts = [history.backlog]
    elif target == "allocated":
        parts = [history.allocated]
    else:
        assert history.demand_true is not None
        parts = [history.demand_true]
    days, means, capacity, kept = _daily_means(history, parts)
    if target == "demand":
        assert history.admitted is not None
        admitted = _daily_counts(history, history.admitted, kept)
        groups = [(k.site, k.accelerator_class) for k in history.keys]
        values = offered_load(means[0], means[1], admitted, groups)
    else:
        values = means[0]
    return Daily(days, history.keys, values, capacity, target)


def offered_load(
    allocated: FloatArray,
    pending: FloatArray,
    admitted: FloatArray,
    groups: Sequence[tuple[str, str]],
    window: int = HOLD_WINDOW,
) -> FloatArray:
    """Daily demand [key, day] from daily mean allocated and pending accelerators and the
    accelerators admitted per day (NaN on days they were not counted):
    D_t = A_t + R_t (P_t - P_{t-1}).

    Work is conserved: the accelerator-days that arrive in a day are either served (the
    day's mean allocation) or join the backlog. The backlog's work is its pending
    accelerators times the mean time R an accelerator is held once admitted, which
    Little's law gives from what was served: R = sum(A) / sum(admitted) over the days of
    the trailing `window` on which admissions were counted, pooled over the queues of a
    site and class; where that group admitted nothing in the window, over its class at
    every site, then over the fleet. Without a backlog this is the allocation; under
    overload it adds the work that queued up, not the queue itself (pending is a stock:
    allocated + pending grows with every day the overload lasts). Days on which no
    admission was counted anywhere in the window (before an operator exported the
    counter) take allocated + pending. Each series is floored at 0: a day's drained
    backlog can exceed its allocation only through noise in R."""
    counted = ~np.isnan(admitted)
    admits = np.where(counted, admitted, 0.0)
    served = np.where(counted, allocated, 0.0)

    def hold(rows: list[int]) -> FloatArray:
        a = _trailing_sum(served[rows].sum(axis=0), window)
        n = _trailing_sum(admits[rows].sum(axis=0), window)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(n > 0, np.clip(a / n, 0.0, float(window)), np.nan))

    keys = range(len(groups))
    fleet = hold(list(keys))
    by_class = {
        c: hold([i for i in keys if groups[i][1] == c]) for c in sorted({g[1] for g in groups})
    }
    r = np.full_like(allocated, np.nan)
    for group in sorted(set(groups)):
        rows = [i for i in keys if groups[i] == group]
        r[rows] = np.where(
            np.isnan(own := hold(rows)),
            np.where(np.isnan(by_class[group[1]]), fleet, by_class[group[1]]),
            own,
        )
    growth = np.diff(pending, axis=1, prepend=pending[:, :1])
    offered = np.where(np.isnan(r), allocated + pending, allocated + r * growth)
    return np.asarray(np.maximum(offered, 0.0), dtype=np.float64)


def _trailing_sum(x: FloatArray, window: int) -> FloatArray:
    """Sum of the last `window` values up to and including each day."""
    total = np.cumsum(x)
    before = np.concatenate((np.zeros(min(window, x.size)), total[:-window]))
    return np.asarray(total - before, dtype=np.float64)


def _day_grid(history: History, hourly: FloatArray) -> FloatArray:
    """[key, day, hour], aligned to midnight UTC (missing hours NaN)."""
    first = history.start.astype("datetime64[D]")
    lead = int((history.start - first.astype("datetime64[s]")) // np.timedelta64(3600, "s"))
    total = lead + history.hours
    n_days = -(-total // 24)
    grid = np.full((len(history.keys), n_days * 24), np.nan)
    grid[:, lead:total] = hourly
    return grid.reshape(len(history.keys), n_days, 24)


def _daily_means(
    history: History, hourly_parts: Sequence[FloatArray]
) -> tuple[npt.NDArray[np.datetime64], list[FloatArray], FloatArray, slice]:
    """Days, each part's daily means [key, day], the daily capacity, and which days of
    the hourly grid were kept."""
    first_part = _day_grid(history, hourly_parts[0])
    n_days = first_part.shape[1]
    # A day is observed when the fleet as a whole reported enough of its hours.
    seen = (~np.isnan(first_part)).any(axis=0).sum(axis=1) >= MIN_HOURS
    if not seen.any():
        raise ValueError("history: no day with enough hourly observations")
    lo, hi = int(np.argmax(seen)), n_days - int(np.argmax(seen[::-1]))
    means: list[FloatArray] = []
    with warnings.catch_warnings():
        # All-NaN slices (missing days, a queue absent from a site) are expected here.
        warnings.simplefilter("ignore", RuntimeWarning)
        for k, part in enumerate(hourly_parts):
            grid = first_part if k == 0 else _day_grid(history, part)
            values = np.nanmean(grid[:, lo:hi], axis=2)
            values = _interpolate(np.where(seen[lo:hi], values, np.nan))
            # A queue never seen at a site: no demand there.
            means.append(np.nan_to_num(values, nan=0.0))
        capacity = np.nanmax(_day_grid(history, history.capacity)[:, lo:hi], axis=2)
    capacity = _ffill(capacity)
    first = history.start.astype("datetime64[D]")
    days = first + np.arange(lo, hi).astype("timedelta64[D]")
    return days, means, capacity, slice(lo, hi)


def _daily_counts(history: History, hourly: FloatArray, kept: slice) -> FloatArray:
    """Daily totals [key, day] of an hourly count: the mean over the hours counted times 24,
    NaN on days the fleet counted fewer than `MIN_HOURS` hours (not interpolated: a day
    not counted is unknown, not zero). On a counted day a key with no count has none."""
    grid = _day_grid(history, hourly)[:, kept]
    counted = (~np.isnan(grid)).any(axis=0).sum(axis=1) >= MIN_HOURS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_day = np.nan_to_num(np.nanmean(grid, axis=2), nan=0.0) * 24
    return np.asarray(np.where(counted[None, :], per_day, np.nan), dtype=np.float64)


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
