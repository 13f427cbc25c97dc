"""Prediction intervals from backtest errors (split-conformal style, by horizon).

A model's own intervals assume its error model is right; on capacity data (regime
changes, censoring, growth) they are usually too narrow. Instead, the errors of the
reconciled forecasts at past origins, divided by each series' scale (its in-sample
seasonal-naive MAE, the MASE denominator), are pooled per level and per horizon week,
and their empirical quantiles become the bands: forecast + q(level, week) x scale.
Widths never shrink with the horizon (a running maximum), which sparse weeks could
otherwise show. Coverage is checked honestly in `backtest` by leaving each origin's own
errors out of the quantiles it is judged with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# Band edges: the 50 % interval [0.25, 0.75] and the 90 % interval [0.05, 0.95].
QUANTILES = (0.05, 0.25, 0.75, 0.95)
WEEK = 7


def scale(y: FloatArray, season: int = WEEK) -> FloatArray:
    """In-sample MAE of the one-season-ahead seasonal-naive forecast per row: the MASE
    denominator of Hyndman & Koehler (2006) with m = `season`.

    Daily demand is scaled with m = 7 (the week) whether or not a history shows a weekly
    cycle, as R's forecast::accuracy() takes m from the series' frequency, so that MASE
    below 1 means the same thing on every history: beating the in-sample error of the
    same day last week."""
    lag = max(season, 1)
    mae = np.nanmean(np.abs(y[:, lag:] - y[:, :-lag]), axis=1)
    # A constant series has no scale; its errors are measured in its own units instead.
    floor = np.maximum(1e-3 * np.nanmean(np.abs(y), axis=1), 1e-6)
    return np.asarray(np.maximum(np.nan_to_num(mae), floor), dtype=np.float64)


def quantile_table(errors: FloatArray, level_of: Sequence[int], levels: int, h: int) -> FloatArray:
    """Quantiles [level, step, q] of scaled errors [origin, series, step] (actual - point)."""
    codes = np.asarray(level_of)
    table = np.zeros((levels, h, len(QUANTILES)))
    weeks = -(-h // WEEK)
    for lv in range(levels):
        rows = errors[:, codes == lv, :]
        for w in range(weeks):
            sl = slice(w * WEEK, min(h, (w + 1) * WEEK))
            sample = rows[:, :, sl].reshape(-1)
            sample = sample[np.isfinite(sample)]
            if sample.size:
                table[lv, sl, :] = np.quantile(sample, QUANTILES)
        # Lower edges only go down and upper edges only up as the horizon grows.
        table[lv, :, :2] = np.minimum.accumulate(table[lv, :, :2], axis=0)
        table[lv, :, 2:] = np.maximum.accumulate(table[lv, :, 2:], axis=0)
    return table


def bands(
    point: FloatArray, scales: FloatArray, table: FloatArray, level_of: Sequence[int]
) -> FloatArray:
    """Band edges [series, step, q], never below zero (demand is not negative)."""
    q = table[np.asarray(level_of), : point.shape[1], :]
    out = point[:, :, None] + q * scales[:, None, None]
    return np.asarray(np.maximum(out, 0.0), dtype=np.float64)
