"""Coherent forecasts: queues sum to their site and class, those to sites, sites to the fleet.

MinT (Wickramasuriya, Athanasopoulos & Hyndman 2019, "Optimal forecast reconciliation
for hierarchical and grouped time series through trace minimization", JASA) with the
shrunk covariance of in-sample one-step errors: the minimum-variance coherent
combination of the base forecasts of every level. hierarchicalforecast does the algebra
with dense matrices: its solves cost O(n^3), and one WLS reconciliation of ~5,000
series did not finish in 15 minutes on the project's 2-core machine. Beyond
`MINT_LIMIT` series `auto` therefore reconciles bottom-up (coherent by construction,
linear in the number of series); `wls_var` and `mint_shrink` stay selectable.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Method = Literal["auto", "mint_shrink", "wls_var", "bottom_up"]
METHODS: tuple[Method, ...] = ("auto", "mint_shrink", "wls_var", "bottom_up")
MINT_LIMIT = 400


def choose(method: Method, series: int) -> Method:
    if method != "auto":
        return method
    return "mint_shrink" if series <= MINT_LIMIT else "bottom_up"


def reconcile(
    summing: FloatArray,
    y_hat: FloatArray,
    y_insample: FloatArray | None = None,
    y_hat_insample: FloatArray | None = None,
    method: Method = "auto",
) -> FloatArray:
    """Reconciled forecasts [series, step]: every row is the sum of its bottom rows.

    `summing` [series, bottom] is the hierarchy's summing matrix S; the bottom series
    are its last rows."""
    from hierarchicalforecast.methods import BottomUp, MinTrace

    chosen = choose(method, summing.shape[0])
    if chosen == "bottom_up" or y_insample is None or y_hat_insample is None:
        out = BottomUp().fit_predict(S=summing, y_hat=y_hat)["mean"]
        return np.asarray(out, dtype=np.float64)
    # In-sample fits start once each model has seen enough days; use the common span.
    ok = ~(np.isnan(y_insample).any(axis=0) | np.isnan(y_hat_insample).any(axis=0))
    try:
        out = MinTrace(method=chosen).fit_predict(
            S=summing,
            y_hat=y_hat,
            y_insample=y_insample[:, ok],
            y_hat_insample=y_hat_insample[:, ok],
        )["mean"]
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError):
        # A singular error covariance (series that never vary): bottom-up is always defined.
        out = BottomUp().fit_predict(S=summing, y_hat=y_hat)["mean"]
    return np.asarray(out, dtype=np.float64)


def incoherence(summing: FloatArray, values: FloatArray) -> float:
    """Largest gap between any series and the sum of its bottom series."""
    bottom = summing.shape[1]
    return float(np.abs(values - summing @ values[-bottom:]).max())
