"""`gpufleet forecast`: months-ahead demand per site, class and queue; backtests; a benchmark."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console

from gpufleet.cli.common import console as err
from gpufleet.cli.common import fail
from gpufleet.cli.common import out as stdout

out = stdout if stdout.is_terminal else Console(width=160)

HistoryOpt = Annotated[
    Path | None, typer.Option("--history", help="Hourly history CSV (see docs/forecast.md).")
]
PrometheusOpt = Annotated[
    str | None, typer.Option("--prometheus", help="Prometheus base URL (http://host:9090).")
]
DaysBackOpt = Annotated[
    int, typer.Option("--days-back", help="With --prometheus: days of history to read.")
]
TargetOpt = Annotated[
    str,
    typer.Option(
        "--target",
        help="demand (offered load; allocated + pending without admission counts), "
        "backlog (allocated + pending), allocated, or true.",
    ),
]
JobsOpt = Annotated[int, typer.Option("--jobs", help="Processes fitting models (0: all cores).")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Forecast demand per site, class and queue; when to order what.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    group.callback()(forecast)
    group.command("backtest")(backtest)
    group.command("bench")(bench)
    app.add_typer(group, name="forecast")


def parse_duration(text: str) -> int:
    """'13w', '91d' or '91' as days."""
    match = re.fullmatch(r"\s*(\d+)\s*([wd]?)\s*", text)
    if not match:
        raise ValueError(f"expected a duration like 13w or 91d (got {text!r})")
    n = int(match.group(1))
    return n * 7 if match.group(2) == "w" else n


def _daily(history: Path | None, prometheus: str | None, days_back: int, target: str) -> Any:
    from gpufleet.forecast.history import HistoryError, read_csv
    from gpufleet.forecast.prometheus import read_prometheus
    from gpufleet.forecast.series import TARGETS, Target, daily

    if (history is None) == (prometheus is None):
        raise fail("give exactly one of --history FILE and --prometheus URL")
    if target not in TARGETS:
        raise fail(f"--target: demand, backlog, allocated or true (got {target!r})")
    try:
        if history is not None:
            hist = read_csv(history)
        else:
            # Whole hours only: the last one read is the last that has ended.
            end = int(time.time()) - 3600
            hist = read_prometheus(cast(str, prometheus), end - days_back * 86400, end)
        return daily(hist, cast(Target, target))
    except (HistoryError, ValueError, OSError) as exc:
        raise fail(str(exc)) from exc


def forecast(
    ctx: typer.Context,
    history: HistoryOpt = None,
    prometheus: PrometheusOpt = None,
    days_back: DaysBackOpt = 180,
    horizon: Annotated[str, typer.Option(help="How far ahead: 13w, 91d.")] = "13w",
    lead_time: Annotated[
        str, typer.Option("--lead-time", help="From order to usable capacity: 12w.")
    ] = "12w",
    capacity_file: Annotated[
        Path | None, typer.Option("--capacity", help="Installed and committed capacity (YAML).")
    ] = None,
    skus_file: Annotated[
        Path | None, typer.Option("--skus", help="SKU table (YAML); default: the packaged one.")
    ] = None,
    method: Annotated[
        str, typer.Option(help="Reconciliation: auto, pooled, mint_shrink, wls_var, bottom_up.")
    ] = "auto",
    target: TargetOpt = "demand",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write fan charts (PNG) here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the capacity table here.")] = None,
    n_jobs: JobsOpt = 0,
) -> None:
    """Forecast demand per (site, class, queue), reconciled, with capacity plans."""
    if ctx.invoked_subcommand is not None:
        return
    from gpufleet.forecast import capacity, pipeline, report
    from gpufleet.forecast.reconcile import METHODS

    if method not in METHODS:
        raise fail(f"--method: one of {', '.join(METHODS)} (got {method!r})")
    try:
        h_days, lead_days = parse_duration(horizon), parse_duration(lead_time)
        skus = capacity.load_skus(skus_file)
        overrides = capacity.load_capacity(capacity_file, skus) if capacity_file else None
    except (ValueError, OSError, KeyError) as exc:
        raise fail(str(exc)) from exc
    series = _daily(history, prometheus, days_back, target)
    with err.status("fitting models and backtesting"):
        try:
            fc = pipeline.run(series, h_days, method, n_jobs=n_jobs or None)
        except ValueError as exc:
            raise fail(str(exc)) from exc
    plans = pipeline.plans(fc, series, lead_days, skus, overrides)
    if as_json:
        out.print_json(json.dumps(report.as_dict(fc, plans)))
    else:
        out.print(report.capacity_table(fc, plans))
        out.print(report.backtest_table(fc.backtest, fc.method))
        for p in plans:
            for note in p.notes:
                err.print(f"{p.site}/{p.accelerator_class}: {note}")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(report.markdown(fc, plans))
    if plot is not None:
        _plot(fc, plans, plot)


def _plot(fc: Any, plans: list[Any], directory: Path) -> None:
    try:
        from gpufleet.forecast import plots
    except ModuleNotFoundError as exc:
        raise fail(f"--plot needs matplotlib ({exc}): pip install 'gpufleet[sim]'") from exc
    from gpufleet.forecast.capacity import capacity_path

    by_name = {f"{p.site}/{p.accelerator_class}": p for p in plans}
    for name in fc.hierarchy.names:
        if fc.hierarchy.levels[fc.hierarchy.names.index(name)] not in ("fleet", "site_class"):
            continue
        cap = None
        if name in by_name:
            cap = list(capacity_path(fc.future, by_name[name].installed, ()))
        safe = name.replace("/", "__")
        path = plots.fan_chart(fc, name, directory / f"forecast-{safe}.png", cap)
        err.print(f"wrote {path}")


def backtest(
    history: HistoryOpt = None,
    prometheus: PrometheusOpt = None,
    days_back: DaysBackOpt = 180,
    origins: Annotated[int, typer.Option(help="Rolling origins, 7 days apart (>= 6).")] = 6,
    method: Annotated[str, typer.Option(help="Reconciliation method.")] = "auto",
    target: TargetOpt = "demand",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    n_jobs: JobsOpt = 0,
) -> None:
    """Rolling-origin accuracy by level and horizon: MASE, WAPE, 90 % coverage."""
    from gpufleet.forecast import pipeline, report
    from gpufleet.forecast.reconcile import Method, choose, incoherence
    from gpufleet.forecast.series import hierarchy

    if origins < 6:
        raise fail(f"--origins: at least 6 (got {origins})")
    series = _daily(history, prometheus, days_back, target)
    h = hierarchy(series.keys)
    y = h.aggregate(series.values)
    with err.status("backtesting"):
        try:
            bt = pipeline.run_backtest(
                y, h, 91, pipeline.season_of(y[0]), cast(Method, method), origins, n_jobs or None
            )
        except ValueError as exc:
            raise fail(str(exc)) from exc
    payload: dict[str, Any] = {
        lv: {name: s.as_dict() for name, s in by_h.items()} for lv, by_h in bt.scores.items()
    }
    worst = max(incoherence(h.S, bt.point[o]) for o in range(bt.point.shape[0]))
    if as_json:
        out.print_json(json.dumps(payload))
        return
    out.print(report.backtest_table(bt, choose(cast(Method, method), len(h.names))))
    err.print(f"origins: day {', '.join(str(c) for c in bt.cutoffs)}; coherence {worst:.2e}")


def bench(
    series: Annotated[
        int, typer.Option(help="Series in the hierarchy (bottom + aggregates).")
    ] = 5000,
    days: Annotated[int, typer.Option(help="Days of history per series.")] = 270,
    origins: Annotated[int, typer.Option(help="Rolling origins.")] = 6,
    n_jobs: JobsOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Fit, backtest (rolling origin) and reconcile `--series` generated series; print the time."""
    from gpufleet.forecast import bench as forecast_bench

    with err.status(f"fitting and backtesting {series} series"):
        result = forecast_bench.run(series, days, n_jobs or None, origins)
    payload = {
        "series": result.series,
        "bottom_series": result.bottom,
        "days": result.days,
        "origins": result.origins,
        "processes": result.n_jobs,
        "reconciliation": result.method,
        "seconds": round(result.seconds, 1),
        "phases_seconds": result.phases,
        "peak_memory_gb": round(result.peak_memory_bytes / 2**30, 2),
        "machine": result.machine,
        "load_average_before": [round(x, 2) for x in result.load_before],
        "load_average_after": [round(x, 2) for x in result.load_after],
        "median_mae_ratio_vs_snaive_13w": result.median_ratio_vs_snaive,
        "backtest": result.scores,
    }
    if as_json:
        out.print_json(json.dumps(payload))
    else:
        out.print(
            f"{result.series} series ({result.bottom} bottom), {result.days} days, "
            f"{result.origins} origins, {result.n_jobs} processes, {result.method}: "
            f"fitted and backtested in {result.seconds:.1f} s "
            f"({', '.join(f'{k} {v:.0f} s' for k, v in result.phases.items())}), "
            f"peak memory {result.peak_memory_bytes / 2**30:.2f} GB (PSS of the process tree)"
        )
        out.print(
            f"machine: {result.machine['cpu']}, {result.machine['cores']} cores; load average "
            f"before {result.load_before[0]:.2f}, after {result.load_after[0]:.2f}"
        )
        out.print(
            "median MAE / seasonal-naive MAE at 13 weeks: "
            + ", ".join(f"{k} {v:.2f}" for k, v in result.median_ratio_vs_snaive.items())
        )
        out.print_json(json.dumps(result.scores))
