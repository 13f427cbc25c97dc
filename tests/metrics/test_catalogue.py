"""CATALOGUE is the metric contract: what a scrape yields is exactly what it lists."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from gpufleet.metrics import CATALOGUE, OperatorMetrics


def scraped(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Family name as exposed (counters with _total) -> (type, label names)."""
    out: dict[str, tuple[str, set[str]]] = {}
    for family in registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        out[name] = (family.type, labels)
    return out


def test_a_scrape_exports_exactly_the_catalogue(
    registry: CollectorRegistry, busy_events: OperatorMetrics
) -> None:
    exported = scraped(registry)
    assert set(exported) == {spec.name for spec in CATALOGUE}
    for spec in CATALOGUE:
        kind, labels = exported[spec.name]
        assert kind == spec.type, spec.name
        assert labels == set(spec.labels), spec.name


def test_names_follow_prometheus_conventions() -> None:
    units = ("_seconds", "_watts", "_accelerators")
    for spec in CATALOGUE:
        assert re.fullmatch(r"gpufleet_[a-z0-9_]+", spec.name), spec.name
        assert spec.name.endswith("_total") == (spec.type == "counter"), spec.name
        stem = spec.name.removesuffix("_total")
        if "duration" in stem or "timestamp" in stem:
            assert stem.endswith("_seconds"), spec.name
        # Gauges of a quantity carry its unit; counts of things (workloads, info) do not.
        if spec.type == "gauge" and "power" in stem:
            assert stem.endswith(units), spec.name
        assert not {"le", "quantile"} & set(spec.labels), spec.name


def test_no_label_is_free_text() -> None:
    # Bounded label sets: object names of cluster-scoped kinds or closed enums only.
    allowed = {
        "site",
        "pool",
        "accelerator_class",
        "queue",
        "phase",
        "state",
        "reason",
        "version",
        "python_version",
        "step",  # the closed set metrics.STEPS
        "kind",  # the closed set metrics.WriteKind
        "identity",  # one per replica of the operator
    }
    for spec in CATALOGUE:
        assert set(spec.labels) <= allowed, spec.name
