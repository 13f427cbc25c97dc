"""`gpufleet simulate` and `gpufleet frag`: what-if replays on top of the real core."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gpufleet.cli.common import console, fail
from gpufleet.cli.common import out as stdout
from gpufleet.core.fairness import MAX_WAIT_SECONDS, MIN_RUNTIME_SECONDS
from gpufleet.sim import report
from gpufleet.sim.compare import Comparison, compare
from gpufleet.sim.fleet import SimFleet
from gpufleet.sim.frag import FragReport, fill_experiment
from gpufleet.sim.jobs import Job, Trace, TraceError
from gpufleet.sim.openb import OpenbPod, read_pods
from gpufleet.sim.policies.base import Policy
from gpufleet.sim.policies.registry import make
from gpufleet.sim.setup import policy_list, prepare
from gpufleet.sim.tenants import QueueSpec, assign_queues, default_queues
from gpufleet.sim.traces import TraceFormat

err = console
out = stdout
if not out.is_terminal:
    # Piped or captured output has no width to fit; the default 80 columns would fold
    # every cell of the eleven-column table.
    out = Console(width=160)


def _plots() -> ModuleType:
    """The chart module; matplotlib is an optional extra, so import it only for --plot."""
    try:
        from gpufleet.sim import plots
    except ModuleNotFoundError as exc:
        hint = escape(f"--plot needs matplotlib ({exc}): pip install 'gpufleet[sim]'")
        err.print(f"[red]error:[/] {hint}")
        raise typer.Exit(2) from exc
    return plots


_PROGRESS_EVERY = 500  # events between progress redraws; redrawing each event costs more than it


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("frag")(frag)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def simulate(
    fleet: Annotated[Path, typer.Option(help="Dev fleet file (YAML) or a trace node list (CSV).")],
    trace: Annotated[Path, typer.Option(help="openb pod list or gpufleet CSV trace.")],
    policy: Annotated[
        list[str] | None,
        typer.Option(help="gpufleet, fifo-first-fit, best-fit, kueue-like (repeat; default all)."),
    ] = None,
    trace_format: Annotated[str, typer.Option("--format", help="auto, openb or csv.")] = "auto",
    load: Annotated[
        float | None,
        typer.Option(help="Re-time arrivals as a seeded Poisson process at this offered load."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the re-timing.")] = 1,
    fleet_fraction: Annotated[
        float, typer.Option(help="Keep this fraction of each pool's nodes (0-1].")
    ] = 1.0,
    cycle: Annotated[
        float, typer.Option(help="Seconds between scheduling cycles (0: at every event).")
    ] = 0.0,
    queues: Annotated[int, typer.Option(help="Queues for a trace without tenants.")] = 4,
    shares: Annotated[
        str | None, typer.Option(help="Deserved shares: '0.4,0.3,...' or 'name=w,...'.")
    ] = None,
    max_runtime: Annotated[float | None, typer.Option(help="Cap job runtimes (seconds).")] = None,
    constrain_models: Annotated[
        float | None,
        typer.Option(
            help="What-if: this share (0-1) of the jobs that name no GPU model get one or"
            " two, drawn by the models' GPUs (seeded by --seed)."
        ),
    ] = None,
    min_runtime: Annotated[
        float | None,
        typer.Option(
            help="gpufleet queues: seconds before a workload may be preempted"
            " (default: the API's, 600)."
        ),
    ] = None,
    max_wait: Annotated[
        float | None,
        typer.Option(
            help="gpufleet queues: seconds a queue's next workload waits before it goes ahead"
            " of the fairness order (maxWaitSeconds; default: the API's, 3600)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write PNG charts into this directory.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the table as Markdown.")] = None,
    days: Annotated[
        int | None,
        typer.Option(help="History mode: months of arrivals drawn from the trace's job mix."),
    ] = None,
    growth: Annotated[float, typer.Option(help="History mode: demand growth per 30 days.")] = 0.0,
    weekly: Annotated[
        float, typer.Option(help="History mode: amplitude of the weekly cycle (0-1).")
    ] = 0.0,
    history_out: Annotated[
        Path | None, typer.Option("--history-out", help="History mode: write the hourly CSV.")
    ] = None,
    expand: Annotated[
        list[str] | None,
        typer.Option(help="History mode: SITE:CLASS:NODES@DAY, nodes added on a day (repeat)."),
    ] = None,
    power_cap: Annotated[
        list[str] | None,
        typer.Option("--power-cap", help="History mode: SITE:KW, power a site may draw (repeat)."),
    ] = None,
    start: Annotated[
        str, typer.Option(help="History mode: calendar day of the first hour (UTC).")
    ] = "2025-01-06",
) -> None:
    """Replay a trace on a fleet under several policies and compare them side by side.

    With --days: replay months of synthetic arrivals (one policy) and write the hourly
    history that `gpufleet forecast` reads; --expand and --power-cap replay what-ifs.
    """
    fmt = _trace_format(trace_format)
    if days is not None:
        from gpufleet.cli.simhistory import HistoryRun, run_history

        for name, given_here in (
            ("--max-wait", max_wait),
            ("--constrain-models", constrain_models),
        ):
            if given_here is not None:
                raise fail(f"{name}: not in history mode (--days)")

        run = HistoryRun(
            fleet, trace, fmt, (policy or ["gpufleet"])[0], days, growth, weekly,
            load if load is not None else 0.5, seed, fleet_fraction, queues, shares,
            max_runtime, cycle or 600.0, expand or [], power_cap or [], start,
        )  # fmt: skip
        run_history(run, history_out, as_json, out)
        return
    for name, given in (
        ("--history-out", history_out),
        ("--expand", expand),
        ("--power-cap", power_cap),
    ):
        if given:
            raise fail(f"{name}: only with --days (history mode)")
    try:
        jobs, sim_fleet, queue_specs = prepare(
            fleet, trace, fmt, fleet_fraction, queues, shares, load, seed, max_runtime,
            constrain=constrain_models,
        )  # fmt: skip
        names = policy_list(policy)
        make(names, jobs.jobs, min_runtime, max_wait)  # fail on a bad name before any work
    except (TraceError, ValueError, OSError) as exc:
        raise fail(str(exc)) from exc
    if jobs.skipped:
        err.print(f"skipped {jobs.skipped} rows of the trace: {jobs.skipped_reason}")
    result = _compare(jobs, sim_fleet, queue_specs, names, cycle, min_runtime, max_wait)
    _print_comparison(result, cycle, min_runtime, max_wait, as_json)
    if markdown is not None:
        _write_markdown(markdown, report.metrics_markdown(result.metrics))
    if plot is not None:
        for path in _plots().write_all(result.results, result.metrics, plot):
            err.print(f"wrote {path}")


def _trace_format(value: str) -> TraceFormat:
    if value not in ("auto", "openb", "csv"):
        raise fail(f"--format: must be auto, openb or csv (got {value!r})")
    return cast(TraceFormat, value)


def _compare(
    jobs: Trace,
    sim_fleet: SimFleet,
    queue_specs: tuple[QueueSpec, ...],
    names: list[str],
    cycle: float,
    min_runtime: float | None,
    max_wait: float | None,
) -> Comparison:
    """The replays, one progress bar per policy (each counts arrivals and completions)."""
    total = 2 * len(jobs.jobs)
    with _progress() as bar:
        tasks = {n: bar.add_task(n, total=total) for n in names}

        def step(name: str, done: int) -> None:
            if done % _PROGRESS_EVERY == 0 or done >= total:
                bar.update(tasks[name], completed=done)

        return compare(jobs, sim_fleet, queue_specs, names, cycle, step, min_runtime, max_wait)


def _print_comparison(
    result: Comparison,
    cycle: float,
    min_runtime: float | None,
    max_wait: float | None,
    as_json: bool,
) -> None:
    """The metrics of each policy: a table, or JSON with what was replayed."""
    if as_json:
        payload = {
            "trace": result.trace.source,
            "fleet": result.fleet.name,
            "capacity_gpus": result.fleet.total_gpus,
            "queues": {q.name: q.share for q in result.queues},
            "cycle_seconds": cycle,
            "min_runtime_seconds": MIN_RUNTIME_SECONDS if min_runtime is None else min_runtime,
            "max_wait_seconds": MAX_WAIT_SECONDS if max_wait is None else max_wait,
            "policies": [m.model_dump() for m in result.metrics],
        }
        out.print_json(json.dumps(payload))
    else:
        title = (
            f"{len(result.trace.jobs)} jobs on {result.fleet.total_gpus} GPUs ({result.fleet.name}),"
            f" {len(result.queues)} queues; replay took {result.wall_seconds:.1f} s"
        )
        out.print(report.metrics_table(result.metrics, title))


def _write_markdown(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def frag(
    fleet: Annotated[Path, typer.Option(help="Trace node list (CSV) or dev fleet file.")],
    pods: Annotated[Path, typer.Option(help="openb pod list to draw pods from.")],
    policy: Annotated[
        list[str] | None, typer.Option(help="Policies (repeat; default all).")
    ] = None,
    levels: Annotated[
        str, typer.Option(help="Comma-separated fractions of capacity asked.")
    ] = "1.0,1.05,1.1,1.15,1.2,1.25,1.3",
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
    batch: Annotated[int, typer.Option(help="Pods arriving between two decisions.")] = 1,
    queues: Annotated[int, typer.Option(help="Queues the pods are spread over.")] = 4,
    min_gpus: Annotated[int, typer.Option(help="Draw only pods asking at least this many.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write the chart to this PNG file.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the table as Markdown.")] = None,
) -> None:
    """Fill the fleet from a pod list to 100-130% of capacity; GPUs left unallocated."""
    from gpufleet.sim.fleetsource import load_sim_fleet

    try:
        sim_fleet = load_sim_fleet(fleet)
        raw, _ = read_pods(pods)
        fractions = [float(x) for x in levels.split(",") if x.strip()]
        queue_specs = default_queues(queues)
        jobs = _pod_jobs(raw, str(pods), min_gpus, queue_specs)
        chosen = make(policy_list(policy), jobs)
    except (TraceError, ValueError, OSError) as exc:
        raise fail(str(exc)) from exc
    result = _fill(jobs, sim_fleet, queue_specs, chosen, fractions, seed, batch)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        title = (
            f"GPUs left unallocated, {sim_fleet.name} ({result.capacity_gpus} GPUs), {pods.name}"
        )
        out.print(report.frag_table(result, title))
    if markdown is not None:
        _write_markdown(markdown, report.frag_markdown(result))
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        _plots().fragmentation(result, plot, f"Fill to saturation: {pods.name}")
        err.print(f"wrote {plot}")


def _pod_jobs(
    raw: list[OpenbPod], source: str, min_gpus: int, queue_specs: tuple[QueueSpec, ...]
) -> list[Job]:
    """The pods asking at least `min_gpus`, as jobs arriving at once, spread over the queues."""
    jobs = [p.job(i, arrival=0.0, runtime=1.0) for i, p in enumerate(raw) if p.gpus >= min_gpus]
    return list(assign_queues(Trace(tuple(jobs), source), queue_specs).jobs)


def _fill(
    jobs: list[Job],
    sim_fleet: SimFleet,
    queue_specs: tuple[QueueSpec, ...],
    chosen: list[Policy],
    fractions: list[float],
    seed: int,
    batch: int,
) -> FragReport:
    """The fill experiment, one progress bar per policy."""
    with _progress() as bar:
        tasks = {p.name: bar.add_task(p.name, total=1) for p in chosen}

        def step(name: str, done: int, total: int) -> None:
            if done % _PROGRESS_EVERY == 0 or done >= total:
                bar.update(tasks[name], completed=done, total=total)

        return fill_experiment(jobs, sim_fleet, queue_specs, chosen, fractions, seed, batch, step)
