"""/metrics, /healthz and /readyz over real HTTP on the loopback."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gpufleet.metrics import MetricsServer, OperatorMetrics, serve


class Switch:
    def __init__(self) -> None:
        self.healthy = True
        self.ready = False

    def health(self) -> bool:
        return self.healthy

    def readiness(self) -> bool:
        return self.ready


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def server(
    registry: CollectorRegistry, events: OperatorMetrics, switch: Switch
) -> Iterator[MetricsServer]:
    with serve(registry, "127.0.0.1", 0, health=switch.health, ready=switch.readiness) as running:
        yield running


def get(server: MetricsServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_endpoint_serves_parseable_fleet_and_event_metrics(server: MetricsServer) -> None:
    status, body = get(server, "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    capacity = families["gpufleet_pool_capacity_accelerators"]
    assert {(s.labels["pool"], s.value) for s in capacity.samples} == {
        ("h200-a", 64),
        ("h100-a", 16),
    }
    assert "gpufleet_scheduling_cycles" in families  # the parser drops _total from the family


def test_probes_follow_their_checks(server: MetricsServer, switch: Switch) -> None:
    assert get(server, "/healthz")[0] == 200
    assert get(server, "/readyz")[0] == 503
    switch.ready = True
    assert get(server, "/readyz")[0] == 200
    switch.healthy = False
    assert get(server, "/healthz")[0] == 503


def test_a_check_that_raises_answers_503_with_the_error(
    registry: CollectorRegistry,
) -> None:
    def broken() -> bool:
        raise RuntimeError("cache not built")

    with serve(registry, "127.0.0.1", 0, health=broken) as running:
        status, body = get(running, "/readyz")
    assert status == 503
    assert "RuntimeError: cache not built" in body


def test_unknown_paths_are_404(server: MetricsServer) -> None:
    assert get(server, "/secrets")[0] == 404


def test_an_invalid_port_is_refused() -> None:
    with pytest.raises(ValueError, match="port must be between 0 and 65535"):
        serve(CollectorRegistry(), "127.0.0.1", 70000, health=lambda: True)
