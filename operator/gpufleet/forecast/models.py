"""Statistical models and baselines, fitted with statsforecast.

The forecast of a series is an equal-weight combination of a few statistical models:
combinations beat picking one per series in the M3/M4 competitions (Makridakis et al.
2020, "The M4 Competition: 100,000 time series and 61 forecasting methods"). Which
models depends on the level, because there are a few aggregate series and thousands of
queue series:

- aggregates (fleet, site, site x class): ARIMA(1,0,0)(0,1,1)_7 with drift and MSTL whose
  deseasonalised part is AR(1) with drift, both on the log scale. A fleet's demand is
  a queue whose occupancy reverts to a growing mean (M/G/inf fed by arrivals growing
  by a factor per month, with a weekly cycle proportional to the level): the
  trend-stationary ARIMA extrapolates the growth rather than the last wiggle, and the
  log scale makes the growth compound and the weekly swing grow with the level, as
  they do. Fixed orders: AutoARIMA's search took ~1.8 s per series here.
  The same ARIMA on the linear scale was a member until measured to under-extrapolate
  compounding growth (-3.4 % at the fleet's 13th week on 13 growing simulated
  histories, the log members -0.3 % and +0.3 %).
- queues (the bottom series): the same ARIMA on the linear scale and AutoTheta (the Theta variant of best
  in-sample fit, Fiorucci et al. 2016), the two
  cheapest members that held up: ~40 and ~20 ms per series and origin set on one core,
  against ~140 ms for MSTL and ~80 ms for AutoETS.

Measured on simulated small fleets (docs/forecast.md, "Model choice" and "Results"); with
the pooled reconciliation most site x class series take the fleet's forecast, and the
choice of members moved the mean site x class 13-week MASE by about 0.01. AutoETS chases
the last weeks' level and was the slowest member; it was dropped.

Seasonal-naive and random-walk-with-drift are the baselines every model is judged
against. Series are fitted in chunks of `CHUNK`, so memory does not grow with their number.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
AGGREGATE = ("arima_log", "mstl_log")
BOTTOM = ("arima", "theta")
BASELINES = ("snaive", "drift")
# Fitted on log(1 + y) and transformed back: growth compounds, the weekly swing scales.
LOG = frozenset({"arima_log", "mstl_log"})
SEASON = 7  # days: the weekly cycle
# Series fitted per statsforecast call: its frames, fitted values and worker results
# exist for one chunk at a time, so memory stays bounded whatever the number of series
# (one call over 5,000 series grew past 19 GB).
CHUNK = 500


def seasonal(y: FloatArray, season: int = SEASON) -> bool:
    """The M4 competition's seasonality test (90 %) on the autocorrelation at `season`.

    Significant when |r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n), as in the Theta
    method's benchmark; a series shorter than three seasons counts as not seasonal.
    """
    from statsmodels.tsa.stattools import acf

    if y.size < 3 * season or np.allclose(y, y[0]):
        return False
    r = acf(y, nlags=season, fft=True)
    limit = 1.645 * np.sqrt((1 + 2 * float(np.sum(r[1:season] ** 2))) / y.size)
    return bool(abs(r[season]) > limit)


def _model(name: str, season: int) -> object:
    from statsforecast.models import (
        ARIMA,
        MSTL,
        AutoTheta,
        RandomWalkWithDrift,
        SeasonalNaive,
    )

    # Seasonal MA(1) on the weekly difference; none when the history shows no season.
    seasonal_order = (0, 1, 1) if season > 1 else (0, 0, 0)
    if name in ("arima", "arima_log"):
        return ARIMA(
            order=(1, 0, 0),
            seasonal_order=seasonal_order,
            season_length=season,
            include_drift=True,
            alias=name,
        )
    if name == "mstl_log":
        trend = ARIMA(order=(1, 0, 0), include_drift=True)
        if season == 1:  # no season to take out: the trend model alone
            return ARIMA(order=(1, 0, 0), include_drift=True, alias=name)
        return MSTL(season_length=season, trend_forecaster=trend, alias=name)
    if name == "theta":
        return AutoTheta(season_length=season, alias=name)
    if name == "snaive":  # the benchmark: the same day last week, season or not
        return SeasonalNaive(season_length=SEASON, alias=name)
    if name == "drift":
        return RandomWalkWithDrift(alias=name)
    raise ValueError(f"unknown model {name!r}")


def _engine(names: Sequence[str], season: int, n_jobs: int) -> object:
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    # A series a model cannot fit (constant, all zero) falls back to naive.
    return StatsForecast(
        models=[_model(m, season) for m in names],
        freq=1,
        n_jobs=n_jobs,
        fallback_model=Naive(),
    )


def _frame(y: FloatArray) -> pd.DataFrame:
    n, t = y.shape
    return pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(n), t),
            "ds": np.tile(np.arange(t), n),
            "y": y.reshape(-1),
        }
    )


def _matrix(df: pd.DataFrame, column: str, n: int) -> FloatArray:
    ordered = df.sort_values(["unique_id", "ds"])
    return ordered[column].to_numpy(dtype=np.float64).reshape(n, -1)


def jobs(n_jobs: int | None) -> int:
    return n_jobs if n_jobs else (os.cpu_count() or 1)


def chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    """Consecutive row ranges of at most `size` rows; each is fitted, copied out and freed."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
        gc.collect()


def _scales(names: Sequence[str]) -> list[tuple[tuple[str, ...], bool]]:
    """The models split by the scale they are fitted on: [(names, on log scale)]."""
    plain = tuple(m for m in names if m not in LOG)
    logged = tuple(m for m in names if m in LOG)
    return [(group, log) for group, log in ((plain, False), (logged, True)) if group]


def _groups(members: Sequence[tuple[str, ...]]) -> list[tuple[tuple[str, ...], IntArray]]:
    """Rows grouped by the models combined for them: [(members, row indices)]."""
    out = []
    for m in dict.fromkeys(members):
        out.append((m, np.array([i for i, x in enumerate(members) if x == m], dtype=np.int64)))
    return out


def _to_scale(y: FloatArray, log: bool) -> FloatArray:
    return np.log1p(np.maximum(y, 0.0)) if log else y


def _from_scale(y: FloatArray, log: bool) -> FloatArray:
    return np.expm1(y) if log else y


def _combine(
    values: dict[str, FloatArray], members: Sequence[tuple[str, ...]], axis: int = 0
) -> FloatArray:
    """The equal-weight mean of each row's members; rows are along `axis`."""
    out = np.empty_like(next(iter(values.values())))
    for group, rows in _groups(members):
        where = (slice(None),) * axis + (rows,)
        out[where] = np.mean([values[m][where] for m in group], axis=0)
    return out


@dataclass(frozen=True)
class Fit:
    """Forecasts [series, step] per model (NaN on rows a model was not fitted to), the
    combination of each row's members, and its in-sample one-step fitted values."""

    forecasts: dict[str, FloatArray]
    combined: FloatArray
    combined_fitted: FloatArray


def forecast(
    y: FloatArray,
    h: int,
    season: int,
    members: Sequence[tuple[str, ...]],
    n_jobs: int | None = None,
    fitted_values: bool = True,
) -> Fit:
    """Fit each row's `members` and the baselines on `y` [series, day]; forecast `h` days.

    In-sample fitted values (MinT needs them; pooled and bottom-up do not) only if
    `fitted_values`."""
    n, t = y.shape
    names = tuple(dict.fromkeys([*(m for ms in members for m in ms), *BASELINES]))
    forecasts = {m: np.full((n, h), np.nan) for m in names}
    fitted = {m: np.full((n, t), np.nan) for m in names}
    for group, rows in _groups(members):
        for scale_names, log in _scales((*group, *BASELINES)):
            ys = _to_scale(y[rows], log)
            for part in chunks(rows.size):
                idx = rows[part]
                sf = _engine(scale_names, season, jobs(n_jobs))
                df = _frame(ys[part])
                fc = sf.forecast(df=df, h=h, fitted=fitted_values)  # type: ignore[attr-defined]
                for m in scale_names:
                    forecasts[m][idx] = _from_scale(_matrix(fc, m, idx.size), log)
                if fitted_values:
                    fv = sf.forecast_fitted_values()  # type: ignore[attr-defined]
                    for m in scale_names:
                        fitted[m][idx] = _from_scale(_matrix(fv, m, idx.size), log)
                    del fv
                del sf, fc, df
    return Fit(forecasts, _combine(forecasts, members), _combine(fitted, members))


@dataclass(frozen=True)
class RollingOrigin:
    """Forecasts from several origins: arrays [origin, series, step]."""

    cutoffs: tuple[int, ...]  # index of the last training day of each origin
    actual: FloatArray
    forecasts: dict[str, FloatArray]  # per model, NaN on rows it was not fitted to
    combined: FloatArray
    combined_fitted: list[FloatArray]  # per origin: [series, training day]


def rolling_origin(
    y: FloatArray,
    h: int,
    origins: int,
    step: int,
    season: int,
    members: Sequence[tuple[str, ...]],
    n_jobs: int | None = None,
    refit: bool = True,
    fitted_values: bool = True,
) -> RollingOrigin:
    """Rolling-origin evaluation (Tashman 2000): origins `step` days apart, the last
    `h` days before the end; each origin's models see only the days up to it.

    `refit=False` estimates parameters once, at the first origin, and only updates the
    states at later ones: the same out-of-sample discipline at a fraction of the cost.
    statsforecast cannot carry the drift baseline forward that way, so it is left out.
    """
    n, t = y.shape
    if t - h - step * (origins - 1) < 3 * SEASON:
        raise ValueError(
            f"history: {t} days is too short for {origins} origins {step} days apart"
            f" and a {h}-day horizon"
        )
    baselines = BASELINES if refit else tuple(m for m in BASELINES if m != "drift")
    names = tuple(dict.fromkeys([*(m for ms in members for m in ms), *baselines]))
    cutoffs = tuple(range(t - h - step * (origins - 1) - 1, t - h, step))
    actual = np.stack([y[:, c + 1 : c + 1 + h] for c in cutoffs])
    forecasts = {m: np.full((origins, n, h), np.nan) for m in names}
    fitted = {m: [np.full((n, c + 1), np.nan) for c in cutoffs] for m in names}
    for group, rows in _groups(members):
        for scale_names, log in _scales((*group, *baselines)):
            ys = _to_scale(y[rows], log)
            for part in chunks(rows.size):
                idx = rows[part]
                k = idx.size
                sf = _engine(scale_names, season, jobs(n_jobs))
                cv = sf.cross_validation(  # type: ignore[attr-defined]
                    df=_frame(ys[part]),
                    h=h,
                    n_windows=origins,
                    step_size=step,
                    refit=refit,
                    fitted=fitted_values,
                )
                cv = cv.sort_values(["cutoff", "unique_id", "ds"])
                got = tuple(int(c) for c in sorted(cv["cutoff"].unique()))
                assert got == cutoffs, (got, cutoffs)
                for m in scale_names:
                    values = cv[m].to_numpy(dtype=np.float64).reshape(origins, k, h)
                    forecasts[m][:, idx] = _from_scale(values, log)
                if fitted_values:
                    fv = sf.cross_validation_fitted_values()  # type: ignore[attr-defined]
                    for o, cutoff in enumerate(cutoffs):
                        part_fv = fv[fv["cutoff"] == cutoff].sort_values(["unique_id", "ds"])
                        for m in scale_names:
                            block = part_fv[m].to_numpy(dtype=np.float64).reshape(k, -1)
                            fitted[m][o][idx] = _from_scale(block, log)
                    del fv
                del sf, cv
    combined = _combine(forecasts, members, axis=1)
    combined_fitted = [
        _combine({m: f[o] for m, f in fitted.items()}, members) for o in range(origins)
    ]
    return RollingOrigin(cutoffs, actual, forecasts, combined, combined_fitted)
