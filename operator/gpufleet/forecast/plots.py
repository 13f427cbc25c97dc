"""Fan charts: history, the p50 forecast, its 50 % and 90 % bands, and capacity."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt

from gpufleet.forecast.pipeline import Forecast

HISTORY_DAYS = 120


def fan_chart(fc: Forecast, series: str, path: Path, capacity: list[float] | None = None) -> Path:
    i = fc.hierarchy.names.index(series)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    past = fc.days[-HISTORY_DAYS:]
    ax.plot(
        past,
        fc.history[i, -HISTORY_DAYS:],
        color="black",
        lw=1,
        label="demand (allocated + pending)",
    )
    ax.fill_between(
        fc.future,
        fc.bands[i, :, 0],
        fc.bands[i, :, 3],
        color="tab:blue",
        alpha=0.2,
        label="90 % band",
    )
    ax.fill_between(
        fc.future,
        fc.bands[i, :, 1],
        fc.bands[i, :, 2],
        color="tab:blue",
        alpha=0.4,
        label="50 % band",
    )
    ax.plot(fc.future, fc.point[i], color="tab:blue", lw=1.5, label="forecast (p50)")
    if capacity is not None:
        ax.plot(
            fc.future, capacity, color="tab:red", ls="--", lw=1.2, label="installed + committed"
        )
    ax.set_title(f"{series}: daily mean accelerators")
    ax.set_ylabel("accelerators")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
