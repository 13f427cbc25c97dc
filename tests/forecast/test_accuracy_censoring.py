"""Forecasts of simulated fleets (item 2): accuracy, calibration, coherence, censoring.

Small fleets and two scenarios keep this to a minute or two; the full-size figures come
from the commands in docs/forecast.md.
"""

from __future__ import annotations

import pytest

from gpufleet.forecast import pipeline
from gpufleet.forecast.reconcile import incoherence
from gpufleet.forecast.series import Daily, FloatArray, daily, hierarchy

from .simulated import fleet, simulate

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("seed", "growth", "weekly"), [(1, 0.1, 0.3), (2, 0.05, 0.5)])
def test_beats_seasonal_naive_with_calibrated_coherent_bands(
    seed: int, growth: float, weekly: float
) -> None:
    series = daily(simulate(200, growth, weekly, 0.3, seed))
    h = hierarchy(series.keys)
    y = h.aggregate(series.values)
    bt = pipeline.run_backtest(y, h, 91, pipeline.season_of(y[0]), "auto", n_jobs=1)
    site_class = bt.scores["site_class"]["13w"]
    # Head to head with seasonal-naive at the same origins and days.
    assert site_class.mae_vs_snaive < 0.9
    assert site_class.mase < bt.baseline_mase["site_class"]["13w"]["snaive"]
    assert 0.85 <= site_class.p90_coverage <= 0.95
    assert all(incoherence(h.S, bt.point[o]) < 1e-6 for o in range(bt.point.shape[0]))


def weekly_peak(days: FloatArray) -> float:
    """Mean over the weeks of each week's busiest day: what capacity must serve."""
    return float(days.reshape(-1, 7).max(axis=1).mean())


def test_allocated_alone_under_forecasts_and_allocated_plus_pending_recovers_demand() -> None:
    # Load 0.8 with a weekly swing of 0.3: mid-week demand exceeds Frankfurt's 64 H100,
    # weekends drain the queue. (Under heavier, sustained overload the backlog grows and
    # allocated + pending overstates demand: docs/forecast.md, "The target".)
    hist = simulate(182, 0.0, 0.3, 0.8, 5, fleet(fra_nodes=8, osl_nodes=32))
    horizon = 28
    fra = [k for k, key in enumerate(hist.keys) if key.site == "fra"]
    truth = weekly_peak(daily(hist, "true").values[fra, -horizon:].sum(axis=0))
    assert truth > 64  # the simulated demand really exceeds capacity
    peaks = {}
    for target in ("allocated", "demand"):
        series = daily(hist, target)  # type: ignore[arg-type]
        past = Daily(
            series.days[:-horizon],
            series.keys,
            series.values[:, :-horizon],
            series.capacity[:, :-horizon],
        )
        fc = pipeline.run(past, horizon, n_jobs=1)
        peaks[target] = weekly_peak(fc.point[fc.hierarchy.names.index("fra/nvidia-h100")])
    assert peaks["allocated"] < 0.9 * truth
    assert abs(peaks["demand"] - truth) < 0.1 * truth
