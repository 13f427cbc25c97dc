"""Rolling-origin accuracy by level and horizon: MASE, WAPE, 90 % interval coverage.

MASE (Hyndman & Koehler 2006, "Another look at measures of forecast accuracy", IJF
22(4)) divides the forecast's mean absolute error over the horizon by the in-sample MAE
of the one-season-ahead seasonal-naive forecast (the same day last week, m = 7, on every
history) over all the days up to that origin; per series and origin, then the
arithmetic mean over the series of a level and the origins (as the M4 competition
averages it). Below 1: the forecast's errors are smaller than seasonal-naive's
in-sample one-week-ahead errors, a harder bar at 13 weeks than beating seasonal-naive's
13-week forecast, which `mae_vs_snaive` measures. WAPE is sum |error| / sum actual over the level. Coverage is the share of
actual days inside the 90 % band, each origin's band calibrated on the other origins'
errors only (leave-one-origin-out), so it is not scored on the errors that built it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpufleet.forecast import calibrate

FloatArray = npt.NDArray[np.float64]
HORIZONS = {"4w": 28, "13w": 91}


@dataclass(frozen=True)
class Scores:
    mase: float
    wape: float
    p90_coverage: float
    # MAE over the seasonal-naive forecast's MAE at the same origins and days: the
    # head-to-head comparison (below 1: better), where MASE scales by in-sample errors.
    mae_vs_snaive: float

    def as_dict(self) -> dict[str, float]:
        return {
            "mase": round(self.mase, 4),
            "wape": round(self.wape, 4),
            "p90_coverage": round(self.p90_coverage, 4),
            "mae_vs_snaive": round(self.mae_vs_snaive, 4),
        }


def mase(actual: FloatArray, point: FloatArray, scales: FloatArray) -> float:
    """Mean over (origin, series) of MAE / scale; arrays [origin, series, step]."""
    mae = np.abs(actual - point).mean(axis=2)
    return float((mae / scales).mean())


def wape(actual: FloatArray, point: FloatArray) -> float:
    denominator = float(np.abs(actual).sum())
    return float(np.abs(actual - point).sum()) / denominator if denominator > 0 else float("nan")


def loo_bands(
    actual: FloatArray,
    point: FloatArray,
    scales: FloatArray,
    level_of: list[int],
    levels: int,
) -> FloatArray:
    """90 % bands [origin, series, step, 2] from the other origins' scaled errors."""
    origins, n, h = point.shape
    errors = (actual - point) / scales[:, :, None]
    out = np.zeros((origins, n, h, 2))
    for o in range(origins):
        others = np.delete(errors, o, axis=0)
        table = calibrate.quantile_table(others, level_of, levels, h)
        b = calibrate.bands(point[o], scales[o], table, level_of)
        out[o, :, :, 0] = b[:, :, 0]
        out[o, :, :, 1] = b[:, :, -1]
    return out


def coverage(actual: FloatArray, band: FloatArray) -> float:
    inside = (actual >= band[..., 0] - 1e-9) & (actual <= band[..., 1] + 1e-9)
    return float(inside.mean())


def score(
    actual: FloatArray,
    point: FloatArray,
    scales: FloatArray,
    band: FloatArray,
    snaive: FloatArray,
    h: int,
) -> Scores:
    """Scores over the first `h` steps of arrays [origin, series, step(, 2)]."""
    a, p, b = actual[:, :, :h], point[:, :, :h], band[:, :, :h]
    naive_mae = float(np.abs(a - snaive[:, :, :h]).mean())
    relative = float(np.abs(a - p).mean()) / naive_mae if naive_mae > 0 else float("nan")
    return Scores(mase(a, p, scales), wape(a, p), coverage(a, b), relative)
