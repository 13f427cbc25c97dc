"""The whole forecast: base models at every level, reconciliation, calibrated bands,
rolling-origin scores, and the capacity plan of every site and class."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpufleet.forecast import backtest, calibrate, capacity, models
from gpufleet.forecast.reconcile import Method, choose, needs_fitted, reconcile
from gpufleet.forecast.series import LEVELS, Daily, Hierarchy, hierarchy

FloatArray = npt.NDArray[np.float64]
ORIGINS = 6
STEP = 7  # days between origins


@dataclass(frozen=True)
class Backtest:
    """Reconciled rolling-origin forecasts and their scores."""

    cutoffs: tuple[int, ...]
    actual: FloatArray  # [origin, series, step]
    point: FloatArray  # reconciled combination
    scales: FloatArray  # [origin, series]
    baselines: dict[str, FloatArray]
    unreconciled: FloatArray
    scores: dict[str, dict[str, backtest.Scores]]  # level -> horizon -> scores
    baseline_mase: dict[str, dict[str, dict[str, float]]]  # level -> horizon -> model -> mase
    errors: FloatArray  # scaled errors of `point`, for the final bands


@dataclass(frozen=True)
class Forecast:
    hierarchy: Hierarchy
    days: npt.NDArray[np.datetime64]
    history: FloatArray  # [series, day]
    future: npt.NDArray[np.datetime64]
    point: FloatArray  # [series, step], reconciled (coherent)
    bands: FloatArray  # [series, step, q] per calibrate.QUANTILES
    season: int
    method: str
    backtest: Backtest


def season_of(y: FloatArray) -> int:
    """7 when the fleet's day-to-day changes show a weekly cycle, else 1 (no season).

    Tested on first differences so that growth does not pass for seasonality."""
    return models.SEASON if models.seasonal(np.diff(y)) else 1


def members(h: Hierarchy) -> list[tuple[str, ...]]:
    """The models combined for each series: a few aggregates get the costlier set."""
    return [models.BOTTOM if lv == "queue" else models.AGGREGATE for lv in h.levels]


def run_backtest(
    y: FloatArray,
    h: Hierarchy,
    horizon: int,
    season: int,
    method: Method,
    origins: int = ORIGINS,
    n_jobs: int | None = None,
    refit: bool = True,
) -> Backtest:
    # In-sample fits only feed MinT; the other methods skip computing them.
    mint = needs_fitted(method, len(h.names))
    ro = models.rolling_origin(
        y, horizon, origins, STEP, season, members(h), n_jobs, refit, fitted_values=mint
    )
    combined = ro.combined
    point = np.empty_like(combined)
    scales = np.empty(combined.shape[:2])
    for o, cutoff in enumerate(ro.cutoffs):
        train = y[:, : cutoff + 1]
        point[o] = reconcile(h.S, combined[o], train, ro.combined_fitted[o], method, h.levels)
        scales[o] = calibrate.scale(train)  # MASE's scale: m = 7 on every history
    level_of = [LEVELS.index(lv) for lv in h.levels]
    band = backtest.loo_bands(ro.actual, point, scales, level_of, len(LEVELS))
    scores: dict[str, dict[str, backtest.Scores]] = {}
    base: dict[str, dict[str, dict[str, float]]] = {}
    for lv in LEVELS:
        idx = h.level_index(lv)
        scores[lv], base[lv] = {}, {}
        for name, steps in backtest.HORIZONS.items():
            if steps > horizon:
                continue
            scores[lv][name] = backtest.score(
                ro.actual[:, idx],
                point[:, idx],
                scales[:, idx],
                band[:, idx],
                ro.forecasts["snaive"][:, idx],
                steps,
            )
            # Each model and baseline alone, on the levels it was fitted to.
            base[lv][name] = {
                m: backtest.mase(ro.actual[:, idx, :steps], f[:, idx, :steps], scales[:, idx])
                for m, f in [("unreconciled", combined), *ro.forecasts.items()]
                if np.isfinite(f[:, idx]).all()
            }
    errors = (ro.actual - point) / scales[:, :, None]
    return Backtest(
        ro.cutoffs, ro.actual, point, scales, ro.forecasts, combined, scores, base, errors
    )


def run(
    daily: Daily,
    horizon: int,
    method: Method = "auto",
    origins: int = ORIGINS,
    n_jobs: int | None = None,
    refit: bool = True,
    timings: dict[str, float] | None = None,
) -> Forecast:
    """`timings`, when given, receives the seconds of each phase."""
    clock = time.perf_counter()
    spent = timings if timings is not None else {}

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        spent[phase] = spent.get(phase, 0.0) + now - clock
        clock = now

    h = hierarchy(daily.keys)
    y = h.aggregate(daily.values)
    season = season_of(y[0])
    lap("hierarchy")
    bt = run_backtest(y, h, horizon, season, method, origins, n_jobs, refit)
    lap("backtest")
    mint = needs_fitted(method, len(h.names))
    fit = models.forecast(y, horizon, season, members(h), n_jobs, fitted_values=mint)
    lap("fit")
    point = reconcile(h.S, fit.combined, y, fit.combined_fitted, method, h.levels)
    level_of = [LEVELS.index(lv) for lv in h.levels]
    table = calibrate.quantile_table(bt.errors, level_of, len(LEVELS), horizon)
    bands = calibrate.bands(point, calibrate.scale(y), table, level_of)
    future = daily.days[-1] + np.arange(1, horizon + 1).astype("timedelta64[D]")
    lap("reconcile")
    return Forecast(
        h, daily.days, y, future, point, bands, season, choose(method, len(h.names)), bt
    )


def plans(
    fc: Forecast,
    daily: Daily,
    lead_days: int,
    skus: dict[str, capacity.Sku],
    overrides: dict[tuple[str, str], capacity.SiteCapacity] | None = None,
) -> list[capacity.Plan]:
    """A capacity plan for every site and class of the forecast."""
    installed: dict[tuple[str, str], float] = {}
    for k, key in enumerate(daily.keys):
        sc = (key.site, key.accelerator_class)
        installed[sc] = max(installed.get(sc, 0.0), float(daily.capacity[k, -1]))
    out = []
    index = {n: i for i, n in enumerate(fc.hierarchy.names)}
    for (site, cls), now in sorted(installed.items()):
        given = (overrides or {}).get((site, cls), capacity.SiteCapacity())
        i = index[f"{site}/{cls}"]
        out.append(
            capacity.plan(
                site,
                cls,
                fc.future,
                fc.point[i],
                fc.bands[i, :, -1],
                now if given.installed is None else given.installed,
                given.committed,
                lead_days,
                skus.get(cls),
                fc.future[0],
            )
        )
    return out
