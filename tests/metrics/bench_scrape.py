"""Benchmark: how long one /metrics scrape takes for a large fleet.

    .venv/bin/python tests/metrics/bench_scrape.py [--sites 100 --pools-per-site 20 --queues 500]

Prints figures; it asserts nothing (timings are not tests).
"""

from __future__ import annotations

import argparse
import statistics
import time

# Run as a script, this directory is on the path: `fakes` is the tests' fake view.
from fakes import FakeFleet
from prometheus_client import generate_latest

from gpufleet.metrics import (
    PoolState,
    QueueShare,
    SiteConnection,
    SiteState,
    WorkloadGroup,
    WorkloadPhase,
    create_registry,
)

CLASSES = ("nvidia-h100", "nvidia-h200", "nvidia-b200", "aws-trainium2")


def large_fleet(sites: int, pools_per_site: int, queues: int) -> FakeFleet:
    return FakeFleet(
        site_states=[
            SiteState(
                name=f"site-{s}",
                connection=SiteConnection.CONNECTED,
                power_in_use_watts=1e5,
                power_budget_watts=2e5,
            )
            for s in range(sites)
        ],
        pool_states=[
            PoolState(
                name=f"pool-{s}-{p}",
                site=f"site-{s}",
                accelerator_class=CLASSES[p % len(CLASSES)],
                capacity=512,
                allocated=300,
                free=200,
            )
            for s in range(sites)
            for p in range(pools_per_site)
        ],
        shares=[
            QueueShare(
                queue=f"q-{q}",
                accelerator_class=c,
                deserved=64,
                fair_share=80.5,
                allocated=70,
                pending=16,
            )
            for q in range(queues)
            for c in CLASSES
        ],
        groups=[
            WorkloadGroup(queue=f"q-{q}", phase=phase, count=3, oldest_since=1.7e9)
            for q in range(queues)
            for phase in (WorkloadPhase.PENDING, WorkloadPhase.RUNNING)
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--pools-per-site", type=int, default=20)
    parser.add_argument("--queues", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    view = large_fleet(args.sites, args.pools_per_site, args.queues)
    registry, events = create_registry(view)
    for q in range(args.queues):
        events.observe_admission(f"q-{q}", 42.0)
    times, size = [], 0
    for _ in range(args.repeat):
        started = time.perf_counter()
        size = len(generate_latest(registry))
        times.append(time.perf_counter() - started)
    series = sum(len(f.samples) for f in registry.collect())
    print(
        f"sites={args.sites} pools={args.sites * args.pools_per_site} queues={args.queues} "
        f"series={series} body={size / 1024:.0f} KiB "
        f"scrape median={statistics.median(times) * 1000:.1f} ms max={max(times) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
