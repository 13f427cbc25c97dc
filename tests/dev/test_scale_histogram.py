"""`gpufleet dev scale` reads cycle times from histogram deltas between two scrapes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpufleet.dev import scale
from gpufleet.dev.scale import Samples, _histogram, scale_fleet


def scrape(registry: CollectorRegistry) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def test_only_the_observations_between_the_scrapes_count() -> None:
    registry = CollectorRegistry()
    h = Histogram("x_seconds", "x", ["step"], registry=registry, buckets=(0.1, 0.5, 1.0, 5.0))
    h.labels(step="a").observe(4.0)  # before the window: left out
    before = scrape(registry)
    for v in (0.2, 0.3, 0.4, 0.7):
        h.labels(step="a").observe(v)
    h.labels(step="b").observe(3.0)  # another step: left out by the match
    after = scrape(registry)
    got = _histogram(before, after, "x_seconds", step="a")
    assert got["count"] == 4
    assert got["mean"] == 0.4
    assert got["max"] == 1.0  # the upper bound of the bucket that holds the slowest
    assert 0.1 < got["median"] <= 0.5


def test_an_empty_window_reads_zero() -> None:
    registry = CollectorRegistry()
    Histogram("x_seconds", "x", registry=registry)
    s = scrape(registry)
    assert _histogram(s, s, "x_seconds")["count"] == 0


def test_the_gpus_are_split_over_three_clusters_of_8_gpu_nodes() -> None:
    fleet = scale_fleet("s", 10_000)
    counts = [g.count for c in fleet.clusters for g in c.node_groups]
    assert sum(counts) * 8 == 10_000
    assert max(counts) - min(counts) <= 1
    assert [c.hub for c in fleet.clusters] == [True, False, False]


def test_settling_counts_workload_writes_not_the_fleets_own_statuses() -> None:
    """Queue statuses carry decayed usage, rewritten every few seconds on an idle fleet:
    waiting for them to stop would wait out the timeout every run."""
    samples = {
        ("gpufleet_api_writes_total", (("kind", "WorkloadStatus"),)): 10.0,
        ("gpufleet_api_writes_total", (("kind", "FleetStatus"),)): 7.0,
        ("gpufleet_api_writes_total", (("kind", "PodCreate"),)): 3.0,
        ("gpufleet_cycles_total", ()): 99.0,
    }
    assert scale._writes(samples) == 20.0
    assert scale._writes(samples, fleet_status=False) == 13.0
