"""Forecasts of simulated fleets (item 2): accuracy, calibration, coherence, censoring.

Small fleets and two scenarios keep this to a minute or two; the full-size figures come
from the commands in docs/forecast.md.
"""

from __future__ import annotations

import pytest

from gpufleet.forecast import pipeline
from gpufleet.forecast.reconcile import incoherence
from gpufleet.forecast.series import daily, hierarchy

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


def test_allocated_alone_under_forecasts_and_allocated_plus_pending_recovers_demand() -> None:
    # Load 0.85 with a weekly swing of 0.4: mid-week demand exceeds capacity, weekends
    # drain the queue. Frankfurt (one class, one site) is small so its peaks are cut.
    hist = simulate(182, 0.0, 0.4, 0.85, 5, fleet(fra_nodes=8, osl_nodes=32))
    horizon = 28
    fra = [k for k, key in enumerate(hist.keys) if key.site == "fra"]
    peaks = {}
    for target in ("allocated", "demand"):
        series = daily(hist, target)  # type: ignore[arg-type]
        train = series.values[:, :-horizon]
        fc = pipeline.run(
            type(series)(series.days[:-horizon], series.keys, train, series.capacity[:, :-horizon]),
            horizon,
            n_jobs=1,
        )
        i = fc.hierarchy.names.index("fra/nvidia-h100")
        peaks[target] = float(fc.point[i].max())
    truth = daily(hist, "true").values[fra, -horizon:].sum(axis=0)
    capacity = 64.0
    assert truth.max() > 1.1 * capacity  # the history really exceeds capacity
    assert peaks["allocated"] < 0.9 * truth.max()
    assert abs(peaks["demand"] - truth.max()) < 0.1 * truth.max()
