"""Turning command-line choices into a trace, a fleet and queues (shared by CLI and bench)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gpufleet.sim.arrivals import poisson_retime
from gpufleet.sim.constraints import constrain_models
from gpufleet.sim.fleet import SimFleet, subsample
from gpufleet.sim.fleetsource import load_sim_fleet
from gpufleet.sim.jobs import Trace
from gpufleet.sim.tenants import QueueSpec, assign_queues, default_queues, queues_for
from gpufleet.sim.traces import TraceFormat, load_trace


def parse_shares(text: str | None) -> tuple[list[float] | None, dict[str, float] | None]:
    """'0.4,0.3,0.3' (by position) or 'research=2,prod=1' (by queue name)."""
    if not text:
        return None, None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            named = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
            return None, named
        return [float(p) for p in parts], None
    except ValueError as exc:
        raise ValueError(
            f"shares: expected numbers like '0.5,0.5' or 'name=1,other=2' (got {text!r})"
        ) from exc


def prepare(
    fleet_path: Path,
    trace_path: Path,
    fmt: TraceFormat = "auto",
    fleet_fraction: float = 1.0,
    queue_count: int = 4,
    shares: str | None = None,
    load: float | None = None,
    seed: int = 1,
    max_runtime: float | None = None,
    limit: int | None = None,
    constrain: float | None = None,
) -> tuple[Trace, SimFleet, tuple[QueueSpec, ...]]:
    """`constrain`: the share of jobs naming no GPU model that get one or two (seeded
    by `seed`; gpufleet.sim.constraints)."""
    fleet = subsample(load_sim_fleet(fleet_path), fleet_fraction)
    trace = load_trace(trace_path, fmt)
    if limit is not None:
        trace = replace(trace, jobs=trace.jobs[:limit])
    positional, named = parse_shares(shares)
    if any(j.queue for j in trace.jobs):
        if positional is not None:
            raise ValueError("shares: this trace names its queues; give shares as name=weight")
        queues = queues_for(trace, named)
        if any(not j.queue for j in trace.jobs):
            raise ValueError("trace: either every row names a queue or none does")
    else:
        if named is not None:
            raise ValueError("shares: this trace has no queues; give one share per queue q0..")
        queues = default_queues(queue_count, positional)
        trace = assign_queues(trace, queues)
    if constrain is not None:
        trace = constrain_models(trace, fleet, constrain, seed)
    if load is not None:
        trace = poisson_retime(trace, fleet.total_gpus, load, seed, max_runtime)
    elif max_runtime is not None:
        trace = replace(
            trace, jobs=tuple(replace(j, runtime=min(j.runtime, max_runtime)) for j in trace.jobs)
        )
    return trace, fleet, queues


def policy_list(names: Sequence[str] | None) -> list[str]:
    from gpufleet.sim.policies.registry import POLICIES

    return list(names) if names else list(POLICIES)
