"""`gpufleet simulate --days`: a synthetic fleet with a past, and what-if replays of it.

Lives in the CLI because it joins two layers that do not know each other: the simulator
(arrivals, replay, hourly series) and forecasting (the history file format, the SKU
table that turns a power cap into nodes).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from gpufleet.cli.common import console as err
from gpufleet.cli.common import fail
from gpufleet.forecast.history import History, Key, write_csv
from gpufleet.sim.traces import TraceFormat


@dataclass(frozen=True)
class HistoryRun:
    fleet: Path
    trace: Path
    fmt: TraceFormat
    policy: str
    days: int
    growth: float
    weekly: float
    load: float
    seed: int
    fleet_fraction: float
    queues: int
    shares: str | None
    max_runtime: float | None
    cycle: float
    expand: list[str]
    power_cap: list[str]
    start: str


WARMUP_CAP_DAYS = 14


def simulate_history(run: HistoryRun) -> tuple[History, dict[str, float]]:
    """Replay the run: its hourly history and a summary."""
    from gpufleet.forecast.capacity import load_skus
    from gpufleet.sim import history as simhist
    from gpufleet.sim.engine import replay
    from gpufleet.sim.fleet import subsample
    from gpufleet.sim.fleetsource import load_sim_fleet
    from gpufleet.sim.policies.registry import make
    from gpufleet.sim.setup import parse_shares
    from gpufleet.sim.tenants import default_queues
    from gpufleet.sim.traces import load_trace

    fleet = subsample(load_sim_fleet(run.fleet), run.fleet_fraction)
    if run.power_cap:
        skus = load_skus()
        watts = {c: s.node_kw * 1000 for c, s in skus.items()}
        for cap in run.power_cap:
            site, _, kw = cap.partition(":")
            try:
                budget = float(kw) * 1000
            except ValueError as exc:
                raise ValueError(f"--power-cap: expected SITE:KW (got {cap!r})") from exc
            fleet = simhist.power_cap(fleet, site, budget, watts)
    positional, named = parse_shares(run.shares)
    if named is not None:
        raise ValueError("--shares: history mode names queues q0..; give shares by position")
    queues = default_queues(run.queues, positional)
    mix = simhist.mix_from_trace(load_trace(run.trace, run.fmt), run.max_runtime)
    longest = max(s.runtime for s in mix)
    warmup = min(WARMUP_CAP_DAYS, math.ceil(longest / simhist.DAY))
    offset = warmup * simhist.DAY
    changes = [simhist.Expansion.parse(e) for e in run.expand]
    fleet, online = simhist.expand(fleet, changes, offset)
    trace = simhist.synthesize(
        mix, fleet, queues, run.days, run.growth, run.weekly, run.load, run.seed, warmup
    )
    policy = make([run.policy], trace.jobs)[0]
    started = time.perf_counter()
    result = replay(trace, fleet, queues, policy, None, run.cycle, online)
    series = simhist.hourly(result, trace, run.days, online, offset)
    seconds = time.perf_counter() - started
    hist = History(
        np.datetime64(run.start, "s"),
        tuple(Key(*k) for k in series.keys),
        series.allocated,
        series.pending,
        series.capacity,
        series.admission_wait,
        series.demand_true,
        series.admitted,
    )
    last = slice(-7 * 24, None)
    summary = {
        "jobs": float(len(trace.jobs)),
        "capacity_first_day": float(series.capacity[:, :24].sum(0).mean() / len(queues)),
        "capacity_last_week": float(series.capacity[:, last].sum(0).mean() / len(queues)),
        "allocated_last_week": float(series.allocated[:, last].sum(0).mean()),
        "pending_last_week": float(series.pending[:, last].sum(0).mean()),
        "demand_true_last_week": float(series.demand_true[:, last].sum(0).mean()),
        "mean_wait_seconds": float(np.nanmean(series.admission_wait)),
        "replay_seconds": seconds,
    }
    return hist, summary


def run_history(run: HistoryRun, history_out: Path | None, as_json: bool, out: Console) -> None:
    from gpufleet.sim.jobs import TraceError

    try:
        with err.status(f"replaying {run.days} days"):
            hist, summary = simulate_history(run)
    except (TraceError, ValueError, OSError) as exc:
        raise fail(str(exc)) from exc
    if history_out is not None:
        write_csv(hist, history_out)
        err.print(f"wrote {history_out} ({hist.hours} hours x {len(hist.keys)} series)")
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(
        title=f"{run.days} days, growth {run.growth}/30 d, weekly {run.weekly}, seed {run.seed}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), f"{value:,.1f}")
    out.print(table)
