"""Reconciliation is coherent; calibrated bands cover what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from gpufleet.forecast import backtest, calibrate
from gpufleet.forecast.history import Key
from gpufleet.forecast.reconcile import incoherence, reconcile
from gpufleet.forecast.series import hierarchy

KEYS = tuple(Key(s, c, q) for s in ("a", "b") for c in ("x", "y") for q in ("q0", "q1", "q2"))


@pytest.mark.parametrize("method", ["mint_shrink", "wls_var", "bottom_up"])
def test_reconciled_forecasts_are_coherent_and_stay_close(method: str) -> None:
    rng = np.random.default_rng(1)
    h = hierarchy(KEYS)
    truth = h.aggregate(rng.uniform(5, 50, (len(KEYS), 200)))
    fitted = truth + rng.normal(0, 2, truth.shape)
    # Base forecasts of every level, each with its own error: incoherent as given.
    base = truth[:, -30:] + rng.normal(0, 3, (truth.shape[0], 30))
    assert incoherence(h.S, base) > 1
    out = reconcile(h.S, base, truth, fitted, method)  # type: ignore[arg-type]
    assert incoherence(h.S, out) < 1e-6
    # Bottom-up ignores the better-informed upper levels; the other two weigh them in.
    if method != "bottom_up":
        assert np.abs(out - truth[:, -30:]).mean() < np.abs(base - truth[:, -30:]).mean()


def test_pooled_takes_noisy_parts_top_down_and_keeps_smooth_ones_on_their_own() -> None:
    rng = np.random.default_rng(4)
    h = hierarchy(KEYS)
    days = 120
    growth = 1.01 ** np.arange(days + 30)
    # Site a's classes and b/x: noisy parts of a growing fleet; b/y: a pool kept full
    # at 24 (three queues of 8: smooth, not growing).
    bottom = np.empty((len(KEYS), days + 30))
    for k, key in enumerate(KEYS):
        if (key.site, key.accelerator_class) == ("b", "y"):
            bottom[k] = 8.0 + rng.normal(0, 0.05, days + 30)
        else:
            bottom[k] = 10 * growth * (1 + rng.normal(0, 0.3, days + 30))
    truth = h.aggregate(bottom)
    history, future = truth[:, :days], truth[:, days:]
    # Base forecasts: the fleet's is right; every other series is 20 % off.
    base = future * 1.2
    base[0] = future[0]
    by = {n: i for i, n in enumerate(h.names)}
    out = reconcile(h.S, base, history, None, "pooled", h.levels)
    assert incoherence(h.S, out) < 1e-6
    # The flat pool keeps its own (20 % off) forecast, rescaled over its queues.
    np.testing.assert_allclose(out[by["b/y"]], base[by["b/y"]])
    # A noisy part follows the fleet at its recent share: no 20 % error left.
    share = (history[by["a/x"], -56:] / history[0, -56:]).mean()
    np.testing.assert_allclose(out[by["a/x"]], share * future[0])
    error = np.abs(out[by["a/x"]] - future[by["a/x"]]).mean()
    assert error < np.abs(base[by["a/x"]] - future[by["a/x"]]).mean()
    assert reconcile(h.S, base, history, None, "auto", h.levels).shape == base.shape


def test_mint_improves_on_bottom_up_when_the_top_is_better_known() -> None:
    rng = np.random.default_rng(2)
    h = hierarchy(KEYS)
    truth = h.aggregate(rng.uniform(5, 50, (len(KEYS), 260)))
    noise = np.where(np.array(h.levels)[:, None] == "queue", 6.0, 0.5)
    fitted = truth + rng.normal(0, 1, truth.shape) * noise
    base = truth[:, -60:] + rng.normal(0, 1, (truth.shape[0], 60)) * noise
    mint = reconcile(h.S, base, truth[:, :-60], fitted[:, :-60], "mint_shrink")
    bu = reconcile(h.S, base, method="bottom_up")
    top = h.level_index("fleet")
    assert np.abs(mint[top] - truth[top, -60:]).mean() < np.abs(bu[top] - truth[top, -60:]).mean()


def test_bands_from_scaled_errors_cover_about_ninety_percent() -> None:
    rng = np.random.default_rng(3)
    origins, n, h = 8, 40, 28
    scales = rng.uniform(1, 5, (origins, n))
    # Errors grow with the horizon, as forecast errors do.
    growth = np.sqrt(np.arange(1, h + 1))
    errors = rng.normal(0, 1, (origins, n, h)) * growth * scales[:, :, None]
    point = np.full((origins, n, h), 100.0)
    actual = point + errors
    level_of = [0] * n
    band = backtest.loo_bands(actual, point, scales, level_of, 1)
    assert 0.86 <= backtest.coverage(actual, band) <= 0.94
    table = calibrate.quantile_table(errors / scales[:, :, None], level_of, 1, h)
    widths = table[0, :, 3] - table[0, :, 0]
    assert np.all(np.diff(widths) >= 0)  # never narrower further out
    assert widths[-1] > 2 * widths[0]  # sqrt(25) / sqrt(4): week 4 against week 1


def test_mase_and_wape_by_hand() -> None:
    actual = np.array([[[10.0, 20.0]]])
    point = np.array([[[12.0, 17.0]]])
    assert backtest.mase(actual, point, np.array([[2.0]])) == pytest.approx(1.25)
    assert backtest.wape(actual, point) == pytest.approx(5 / 30)
    y = np.array([[1.0, 2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7, 8, 9]])
    assert calibrate.scale(y, 7)[0] == pytest.approx(2.0)
    assert calibrate.scale(y)[0] == pytest.approx(2.0)  # m = 7 unless told otherwise
    assert calibrate.scale(y, 1)[0] == pytest.approx(np.abs(np.diff(y[0])).mean())
