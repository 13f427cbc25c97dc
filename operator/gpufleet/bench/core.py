"""Time full core cycles on a synthetic fleet, and the reference cycle on the same snapshot."""

from __future__ import annotations

import os
import resource
import statistics
import time
from typing import Any

from gpufleet.bench.synthetic import build_fleet
from gpufleet.core import Snapshot, schedule
from gpufleet.core.reference import schedule_reference


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    """Build the fleet and snapshot once, then time `repeats` cycles on it."""
    t0 = time.perf_counter()
    fleet = build_fleet(gpus, queues, pending, seed=seed, fill=fill)
    generate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    snap = Snapshot.build(
        fleet.sites, fleet.pools, fleet.nodes, fleet.queues, fleet.workloads, fleet.now
    )
    build_s = time.perf_counter() - t0
    times = []
    cpu_times = []
    result = None
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        result = schedule(snap)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    assert result is not None
    keys = list(result.verdicts)[:verdict_sample]
    t0 = time.perf_counter()
    for key in keys:
        result.verdicts[key]
    verdict_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "gpus": len(fleet.nodes) * 8,
        "nodes": len(fleet.nodes),
        "sites": len(fleet.sites),
        "pools": len(fleet.pools),
        "queues": len(fleet.queues),
        "pending": fleet.pending,
        "running": fleet.running,
        "fill": fill,
        "admitted": len(result.admissions),
        "evicted": len(result.evictions),
        "repeats": len(times),
        "cycle_seconds_median": statistics.median(times),
        "cycle_seconds_max": max(times),
        "cycle_seconds_min": min(times),
        # CPU time of the process: less sensitive to other load on a shared machine.
        "cycle_cpu_seconds_median": statistics.median(cpu_times),
        "load_average_1m": os.getloadavg()[0],
        "snapshot_build_seconds": build_s,
        "generate_seconds": generate_s,
        "verdict_seconds_per_workload": verdict_s / len(keys) if keys else None,
        "reference_cycle_seconds": None,
        "speedup_over_reference": None,
        "reference_same_decisions": None,
    }
    if reference:
        t0, c0 = time.perf_counter(), time.process_time()
        ref = schedule_reference(snap)
        ref_s = time.perf_counter() - t0
        out["reference_cycle_seconds"] = ref_s
        out["reference_cycle_cpu_seconds"] = time.process_time() - c0
        out["speedup_over_reference"] = ref_s / out["cycle_seconds_median"]
        out["speedup_over_reference_cpu"] = (
            out["reference_cycle_cpu_seconds"] / out["cycle_cpu_seconds_median"]
        )
        out["reference_same_decisions"] = (
            ref.admissions == result.admissions
            and ref.evictions == result.evictions
            and ref.queue_order == result.queue_order
        )
    out["peak_rss_mb"] = peak_rss_mb()
    return out
