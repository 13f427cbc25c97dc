"""Backtest the forecasting tests' small simulated fleets; print site x class scores.

    nice -n 19 .venv/bin/python hack/forecast-small-fleets.py [DAYS:SEED:GROWTH:WEEKLY ...]

Each history is `tests/forecast/simulated.py`'s fleet (two sites, 384 accelerators, load
0.3) replayed for DAYS days, growth GROWTH per 30 days, weekly amplitude WEEKLY; then
`gpufleet forecast backtest`'s rolling origin (six origins, `--method auto`). Without
arguments: the held-out grid of docs/forecast.md, "Results". One Markdown row per
history: site x class 13-week MASE, WAPE, 90 % coverage, the largest coherence gap,
seasonal-naive's 13-week MASE and the MAE relative to it; 4-week MASE; fleet 13-week MASE.
`--csv DIR` also writes each history as a CSV (`gpufleet forecast backtest --history`).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.forecast.simulated import simulate  # noqa: E402

from gpufleet.forecast import pipeline  # noqa: E402
from gpufleet.forecast.history import write_csv  # noqa: E402
from gpufleet.forecast.reconcile import incoherence  # noqa: E402
from gpufleet.forecast.series import daily, hierarchy  # noqa: E402

HELD_OUT = [
    f"{days}:{seed}:{growth}:{weekly}"
    for days, seeds in ((200, (41, 42)), (270, (43, 44)))
    for seed in seeds
    for growth in (0.0, 0.1)
    for weekly in (0.0, 0.5)
]


def main(argv: list[str]) -> None:
    csv_dir = None
    if "--csv" in argv:
        i = argv.index("--csv")
        csv_dir = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    print(
        "| days, seed, growth, weekly | MASE | WAPE | p90 coverage | coherence gap"
        " | seasonal-naive MASE | MAE vs seasonal-naive | 4w MASE | fleet 13w MASE |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec in argv or HELD_OUT:
        days, seed, growth, weekly = spec.split(":")
        hist = simulate(int(days), float(growth), float(weekly), 0.3, int(seed))
        if csv_dir is not None:
            write_csv(hist, csv_dir / f"small-{days}d-seed{seed}-g{growth}-w{weekly}.csv")
        series = daily(hist)
        h = hierarchy(series.keys)
        y = h.aggregate(series.values)
        bt = pipeline.run_backtest(y, h, 91, pipeline.season_of(y[0]), "auto", n_jobs=1)
        sc = bt.scores["site_class"]["13w"]
        gap = max(incoherence(h.S, bt.point[o]) for o in range(bt.point.shape[0]))
        snaive = bt.baseline_mase["site_class"]["13w"]["snaive"]
        print(
            f"| {days}, {seed}, {growth}, {weekly} | {sc.mase:.2f} | {sc.wape:.3f}"
            f" | {sc.p90_coverage:.2f} | {gap:.0e} | {snaive:.2f} | {sc.mae_vs_snaive:.2f}"
            f" | {bt.scores['site_class']['4w'].mase:.2f}"
            f" | {bt.scores['fleet']['13w'].mase:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
