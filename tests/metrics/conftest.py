"""A fake `FleetView` and a registry wired to it, shared by the metrics tests."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gpufleet.metrics import (
    EvictionReason,
    FleetCollector,
    OperatorMetrics,
    PreemptionReason,
    WriteKind,
)

from .fakes import FakeFleet, small_fleet


@pytest.fixture
def fleet() -> FakeFleet:
    return small_fleet()


@pytest.fixture
def registry(fleet: FakeFleet) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(FleetCollector(fleet))
    return registry


@pytest.fixture
def events(registry: CollectorRegistry) -> OperatorMetrics:
    return OperatorMetrics(registry, version="9.9.9")


@pytest.fixture
def busy_events(events: OperatorMetrics) -> OperatorMetrics:
    """Every event metric touched once, as a running operator would."""
    events.observe_cycle(0.02)
    events.observe_step("schedule", 0.01)
    events.count_write(WriteKind.POD_CREATE)
    events.set_leader("gpufleet-0_ab12cd34", True)
    events.observe_admission(
        "nlp", 30, accelerators=8, site="onprem-fra", accelerator_class="nvidia-h100"
    )
    events.count_preemption(PreemptionReason.RECLAIM)
    events.count_eviction(EvictionReason.PREEMPTED)
    return events
