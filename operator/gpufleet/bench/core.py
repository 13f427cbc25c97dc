"""Time full core cycles on a synthetic fleet, and the reference cycle on the same snapshot.

Two snapshots are timed: the generated one (a burst: the share of the fleet not
filled by `fill` is free at once, so the cycle admits thousands of workloads),
and the one after its decisions were applied (steady state: the fleet is as
full as the pending work can make it and the cycle mostly explains why the
rest waits).
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gpufleet.bench.synthetic import SyntheticFleet, arrivals, build_fleet
from gpufleet.core import CycleResult, Placement, Snapshot, Workload, schedule
from gpufleet.core.reference import schedule_reference
from gpufleet.corebuild import core_build


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def apply_decisions(
    workloads: Sequence[Workload], result: CycleResult, now: float
) -> list[Workload]:
    """The workloads after a cycle: admitted ones run, evicted ones wait again."""
    admitted = {a.workload: a for a in result.admissions}
    evicted = {e.workload for e in result.evictions}
    out = []
    for w in workloads:
        if w.key in evicted:
            out.append(replace(w, placement=None))
        elif w.key in admitted:
            a = admitted[w.key]
            out.append(replace(w, placement=Placement(a.site, a.pool, a.nodes, now)))
        else:
            out.append(w)
    return out


@dataclass(frozen=True)
class _Cycles:
    """Wall and CPU seconds of each timed cycle on one snapshot, and the last result."""

    walls: list[float]
    cpus: list[float]
    result: CycleResult


def _time_cycles(snap: Snapshot, repeats: int) -> _Cycles:
    walls, cpus = [], []
    result = None
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        result = schedule(snap)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    assert result is not None
    return _Cycles(walls, cpus, result)


def _snapshot(fleet: SyntheticFleet, workloads: Sequence[Workload], now: float) -> Snapshot:
    return Snapshot.build(fleet.sites, fleet.pools, fleet.nodes, fleet.queues, workloads, now)


def bench_core(
    gpus: int,
    queues: int,
    pending: int,
    *,
    repeats: int = 5,
    reference: bool = True,
    seed: int = 0,
    fill: float = 0.85,
    verdict_sample: int = 1000,
) -> dict[str, Any]:
    """Build the fleet and snapshot once, then time `repeats` cycles on it, the verdicts
    of `verdict_sample` workloads it left pending, and `repeats` cycles on the steady
    state after it; with `reference`, one reference cycle on the first snapshot."""
    t0 = time.perf_counter()
    fleet = build_fleet(gpus, queues, pending, seed=seed, fill=fill)
    generate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    snap = _snapshot(fleet, fleet.workloads, fleet.now)
    build_s = time.perf_counter() - t0
    burst = _time_cycles(snap, repeats)
    verdict_s = _time_verdicts(burst.result, verdict_sample)
    steady_snap = _steady_snapshot(fleet, burst.result, pending, seed)
    steady = _time_cycles(steady_snap, repeats)
    out: dict[str, Any] = {
        "core": core_build(),
        **_fleet_figures(fleet, fill),
        **_burst_figures(burst),
        **_steady_figures(steady_snap, steady),
        "snapshot_build_seconds": build_s,
        "generate_seconds": generate_s,
        "verdict_seconds_per_workload": verdict_s,
        "load_average_1m": os.getloadavg()[0],
        "reference_cycle_seconds": None,
        "speedup_over_reference": None,
        "reference_same_decisions": None,
    }
    if reference:
        out.update(_reference_figures(snap, burst))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _time_verdicts(result: CycleResult, sample: int) -> float | None:
    """Seconds per verdict, read for the first `sample` workloads left pending (None: none)."""
    keys = list(result.verdicts)[:sample]
    t0 = time.perf_counter()
    for key in keys:
        result.verdicts[key]
    verdict_s = time.perf_counter() - t0
    return verdict_s / len(keys) if keys else None


def _steady_snapshot(
    fleet: SyntheticFleet, result: CycleResult, pending: int, seed: int
) -> Snapshot:
    """A minute later: the cycle's decisions applied, and new arrivals bringing the
    backlog back to `pending`, as in a loaded fleet."""
    later = fleet.now + 60.0
    after = apply_decisions(fleet.workloads, result, fleet.now)
    waiting = sum(1 for w in after if w.placement is None)
    after += arrivals(fleet, max(0, pending - waiting), seed=seed + 1, now=later, prefix="next")
    return _snapshot(fleet, after, later)


def _fleet_figures(fleet: SyntheticFleet, fill: float) -> dict[str, Any]:
    return {
        "gpus": len(fleet.nodes) * 8,
        "nodes": len(fleet.nodes),
        "sites": len(fleet.sites),
        "pools": len(fleet.pools),
        "queues": len(fleet.queues),
        "pending": fleet.pending,
        "running": fleet.running,
        "fill": fill,
    }


def _burst_figures(burst: _Cycles) -> dict[str, Any]:
    walls = burst.walls
    return {
        "admitted": len(burst.result.admissions),
        "evicted": len(burst.result.evictions),
        "repeats": len(walls),
        "cycle_seconds_median": statistics.median(walls),
        "cycle_seconds_max": max(walls),
        "cycle_seconds_min": min(walls),
        # The mean counts the cycles that include a full garbage collection at their weight.
        "cycle_seconds_mean": statistics.fmean(walls),
        # CPU time of the process: less sensitive to other load on a shared machine.
        "cycle_cpu_seconds_median": statistics.median(burst.cpus),
    }


def _steady_figures(snap: Snapshot, steady: _Cycles) -> dict[str, Any]:
    return {
        "steady_pending": len(snap.pending),
        "steady_admitted": len(steady.result.admissions),
        "steady_cycle_seconds_median": statistics.median(steady.walls),
        "steady_cycle_seconds_max": max(steady.walls),
        "steady_cycle_seconds_mean": statistics.fmean(steady.walls),
        "steady_cycle_cpu_seconds_median": statistics.median(steady.cpus),
    }


def _reference_figures(snap: Snapshot, burst: _Cycles) -> dict[str, Any]:
    """One reference cycle on the snapshot the burst cycles ran on: its time, how much
    faster the fast cycle's median was, and whether both decided the same."""
    t0, c0 = time.perf_counter(), time.process_time()
    ref = schedule_reference(snap)
    ref_s = time.perf_counter() - t0
    ref_cpu_s = time.process_time() - c0
    result = burst.result
    return {
        "reference_cycle_seconds": ref_s,
        "reference_cycle_cpu_seconds": ref_cpu_s,
        "speedup_over_reference": ref_s / statistics.median(burst.walls),
        "speedup_over_reference_cpu": ref_cpu_s / statistics.median(burst.cpus),
        "reference_same_decisions": (
            ref.admissions == result.admissions
            and ref.evictions == result.evictions
            and ref.queue_order == result.queue_order
        ),
    }
