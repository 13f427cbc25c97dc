"""Every metric the dashboard and the alerts name is one the operator exports, and the
dashboard shows every family the operator exports: no stale names either way."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from gpufleet.metrics import CATALOGUE, create_registry
from metrics.fakes import small_fleet  # tests/metrics: the same fake view as the unit tests

from .helm import CHART, MONITORING_APIS, one, render

# Prometheus adds `up` per target itself; everything else must come from the operator.
FROM_PROMETHEUS = {"up"}


def exported_sample_names() -> set[str]:
    """Sample names of one scrape of the operator's registry, every event touched once."""
    registry, events = create_registry(small_fleet())
    events.observe_cycle(0.01)
    events.observe_admission("q", 1, accelerators=8, site="fra", accelerator_class="nvidia-h100")
    events.observe_step("schedule", 0.01)
    events.set_leader("gpufleet-0_1", True)
    return {sample.name for family in registry.collect() for sample in family.samples}


def strings_under(node: Any, keys: set[str]) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                yield value
            else:
                yield from strings_under(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from strings_under(item, keys)


def dashboard_queries() -> list[str]:
    dashboard = json.loads((CHART / "files" / "dashboards" / "gpufleet.json").read_text())
    return list(strings_under(dashboard, {"expr", "query", "definition"}))


def alert_queries() -> list[str]:
    rule = one(render(api_versions=MONITORING_APIS), "PrometheusRule")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def metric_names(queries: list[str]) -> set[str]:
    names: set[str] = set()
    for query in queries:
        # Drop label matchers' values and strings so they are not read as names.
        query = re.sub(r'"[^"]*"', '""', query)
        query = re.sub(r"\{[^}]*\}", "{}", query)
        query = re.sub(r"\[[^\]]*\]", "[]", query)
        for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", query):
            if (
                token.startswith("gpufleet_")
                or token in FROM_PROMETHEUS
                or token.startswith("process_")
            ):
                names.add(token)
    return names


def test_the_extractor_finds_names_and_ignores_labels() -> None:
    found = metric_names(['sum by (queue) (rate(gpufleet_x_total{queue=~"gpufleet_y"}[5m]))'])
    assert found == {"gpufleet_x_total"}


def test_every_metric_in_the_dashboard_is_exported() -> None:
    names = metric_names(dashboard_queries())
    assert names, "the dashboard queries no metric"
    assert names - exported_sample_names() == set()


@pytest.mark.usefixtures("needs_helm")
def test_every_metric_in_the_alerts_is_exported() -> None:
    names = metric_names(alert_queries())
    assert names, "the alerts query no metric"
    assert names - exported_sample_names() - FROM_PROMETHEUS == set()


def test_the_dashboard_shows_every_exported_family() -> None:
    shown = metric_names(dashboard_queries())
    for spec in CATALOGUE:
        stem = spec.name
        variants = {stem, f"{stem}_bucket", f"{stem}_count", f"{stem}_sum"}
        assert variants & shown, f"{spec.name} is exported but not on the dashboard"
