"""The forecast for people (rich tables) and for machines (a JSON-ready dict)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from gpufleet.forecast import models
from gpufleet.forecast.backtest import HORIZONS
from gpufleet.forecast.calibrate import QUANTILES
from gpufleet.forecast.capacity import Plan
from gpufleet.forecast.pipeline import Backtest, Forecast
from gpufleet.forecast.reconcile import incoherence

WEEK = 7


def weekly(values: np.ndarray[Any, Any]) -> list[float]:
    """Busiest day (daily mean demand) of each forecast week."""
    weeks = -(-values.size // WEEK)
    return [round(float(values[w * WEEK : (w + 1) * WEEK].max()), 2) for w in range(weeks)]


def backtest_dict(fc: Forecast) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for level, by_h in fc.backtest.scores.items():
        out[level] = {}
        for name, scores in by_h.items():
            entry: dict[str, Any] = scores.as_dict()
            entry["mase_by_model"] = {
                m: round(v, 4) for m, v in fc.backtest.baseline_mase[level][name].items()
            }
            out[level][name] = entry
    return out


def as_dict(fc: Forecast, plans: list[Plan]) -> dict[str, Any]:
    h = fc.hierarchy
    series = []
    for i, name in enumerate(h.names):
        series.append(
            {
                "series": name,
                "level": h.levels[i],
                "last_week_mean": round(float(fc.history[i, -WEEK:].mean()), 2),
                "weekly_peak_p50": weekly(fc.point[i]),
                "weekly_peak_p95": weekly(fc.bands[i, :, -1]),
                "daily": {
                    "p50": [round(float(x), 3) for x in fc.point[i]],
                    **{
                        f"p{round(q * 100):02d}": [round(float(x), 3) for x in fc.bands[i, :, k]]
                        for k, q in enumerate(QUANTILES)
                    },
                },
            }
        )
    return {
        "history": {"first_day": str(fc.days[0]), "last_day": str(fc.days[-1])},
        "horizon_days": int(fc.future.size),
        "first_forecast_day": str(fc.future[0]),
        "season_days": fc.season,
        "reconciliation": fc.method,
        # Equal-weight means (statsforecast); docs/forecast.md, "Models".
        "models": {"aggregates": list(models.AGGREGATE), "queues": list(models.BOTTOM)},
        "coherence_max_abs_error": incoherence(h.S, fc.point),
        "backtest": backtest_dict(fc),
        "capacity": [_plan(p) for p in plans],
        "series": series,
    }


def _plan(p: Plan) -> dict[str, Any]:
    return {
        "site": p.site,
        "accelerator_class": p.accelerator_class,
        "installed": p.installed,
        "committed": p.committed,
        "date_needed": p.date_needed,
        "date_needed_p95": p.date_needed_p95,
        "order_by": p.order_by,
        "order_by_p95": p.order_by_p95,
        "already_short": p.already_short,
        "shortfall": p.shortfall.as_dict(),
        "shortfall_p95": p.shortfall_p95.as_dict(),
        "sku": p.sku,
        "notes": p.notes,
    }


def capacity_table(fc: Forecast, plans: list[Plan]) -> Table:
    t = Table(
        title=f"Capacity, {fc.future[0]} to {fc.future[-1]} (p50 and upper edge of the 90 % band)"
    )
    for col in (
        "site", "class", "now", "p50 peak", "p95 peak", "installed", "committed",
        "needed (p50)", "order by", "needed (p95)", "short p50", "short p95",
    ):  # fmt: skip
        t.add_column(col, justify="left" if col in ("site", "class") else "right")
    index = {n: i for i, n in enumerate(fc.hierarchy.names)}
    for p in plans:
        i = index[f"{p.site}/{p.accelerator_class}"]
        t.add_row(
            p.site,
            p.accelerator_class,
            f"{fc.history[i, -WEEK:].mean():.0f}",
            f"{fc.point[i].max():.0f}",
            f"{fc.bands[i, :, -1].max():.0f}",
            f"{p.installed:.0f}",
            f"{p.committed:.0f}",
            p.date_needed or "-",
            p.order_by or "-",
            p.date_needed_p95 or "-",
            _short(p.shortfall.as_dict()),
            _short(p.shortfall_p95.as_dict()),
        )
    return t


def _short(s: dict[str, Any]) -> str:
    if not s["accelerators"]:
        return "-"
    if s["nodes"] is None:
        return f"{s['accelerators']:.0f} acc"
    return f"{s['nodes']} nodes, {s['racks']} racks, {s['kw']:.0f} kW"


def backtest_table(bt: Backtest, method: str) -> Table:
    t = Table(title=f"Backtest: {len(bt.cutoffs)} rolling origins, reconciled ({method})")
    for col in ("level", "horizon", "MASE", "WAPE", "90 % coverage", "MASE snaive", "MASE drift"):
        t.add_column(col, justify="left" if col == "level" else "right")
    for level, by_h in bt.scores.items():
        for name in HORIZONS:
            if name in by_h:
                s = by_h[name]
                base = bt.baseline_mase[level][name]
                t.add_row(
                    level, name, f"{s.mase:.2f}", f"{s.wape:.3f}", f"{s.p90_coverage:.2f}",
                    f"{base['snaive']:.2f}", f"{base.get('drift', float('nan')):.2f}",
                )  # fmt: skip
    return t


def markdown(fc: Forecast, plans: list[Plan]) -> str:
    lines = [
        "| site | class | now | p50 peak | p95 peak | installed | needed (p50) | order by | short (p50) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    index = {n: i for i, n in enumerate(fc.hierarchy.names)}
    for p in plans:
        i = index[f"{p.site}/{p.accelerator_class}"]
        lines.append(
            f"| {p.site} | {p.accelerator_class} | {fc.history[i, -WEEK:].mean():.0f}"
            f" | {fc.point[i].max():.0f} | {fc.bands[i, :, -1].max():.0f} | {p.installed:.0f}"
            f" | {p.date_needed or '-'} | {p.order_by or '-'} | {_short(p.shortfall.as_dict())} |"
        )
    return "\n".join(lines) + "\n"
