"""The fleet gauges are computed from the view at scrape time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from gpufleet.metrics import (
    FleetCollector,
    PoolState,
    QueueShare,
    SiteConnection,
    SiteState,
    WorkloadGroup,
    WorkloadPhase,
)

from .fakes import FakeFleet


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_pool_gauges_equal_the_view(registry: CollectorRegistry) -> None:
    labels = {"site": "factory-muc", "pool": "h200-a", "accelerator_class": "nvidia-h200"}
    assert value(registry, "gpufleet_pool_capacity_accelerators", **labels) == 64
    assert value(registry, "gpufleet_pool_allocated_accelerators", **labels) == 40
    assert value(registry, "gpufleet_pool_free_accelerators", **labels) == 24


def test_free_is_reported_as_given_not_derived(registry: CollectorRegistry) -> None:
    # h100-a has 16 - 0 = 16 unallocated but only 8 free (unready nodes).
    labels = {"site": "onprem-par", "pool": "h100-a", "accelerator_class": "nvidia-h100"}
    assert value(registry, "gpufleet_pool_free_accelerators", **labels) == 8


def test_scrape_reads_current_state_not_a_cached_copy(
    fleet: FakeFleet, registry: CollectorRegistry
) -> None:
    labels = {"site": "factory-muc", "pool": "h200-a", "accelerator_class": "nvidia-h200"}
    fleet.pool_states[0] = fleet.pool_states[0].model_copy(update={"allocated": 48, "free": 16})
    assert value(registry, "gpufleet_pool_allocated_accelerators", **labels) == 48
    fleet.pool_states.clear()
    assert value(registry, "gpufleet_pool_allocated_accelerators", **labels) is None


def test_connection_state_is_one_hot_over_every_state(registry: CollectorRegistry) -> None:
    for site, current in (("factory-muc", "Connected"), ("onprem-par", "Disconnected")):
        for state in SiteConnection:
            expected = 1.0 if state.value == current else 0.0
            got = value(registry, "gpufleet_site_connection_state", site=site, state=state.value)
            assert got == expected, (site, state)


def test_power_budget_is_absent_for_a_site_without_one(registry: CollectorRegistry) -> None:
    assert value(registry, "gpufleet_site_power_budget_watts", site="factory-muc") == 500_000
    assert value(registry, "gpufleet_site_power_in_use_watts", site="factory-muc") == 42_000
    assert value(registry, "gpufleet_site_power_budget_watts", site="onprem-par") is None
    assert value(registry, "gpufleet_site_power_in_use_watts", site="onprem-par") == 0


def test_queue_gauges_equal_the_view(registry: CollectorRegistry) -> None:
    labels = {"queue": "vision", "accelerator_class": "nvidia-h200"}
    assert value(registry, "gpufleet_queue_deserved_accelerators", **labels) == 16
    assert value(registry, "gpufleet_queue_fair_share_accelerators", **labels) == 24.5
    assert value(registry, "gpufleet_queue_allocated_accelerators", **labels) == 32
    assert value(registry, "gpufleet_queue_pending_accelerators", **labels) == 8


def test_every_phase_of_every_known_queue_is_exported_with_zeros(
    registry: CollectorRegistry,
) -> None:
    for queue in ("vision", "nlp"):
        for phase in WorkloadPhase:
            assert value(registry, "gpufleet_workloads", queue=queue, phase=phase.value) is not None
    assert value(registry, "gpufleet_workloads", queue="vision", phase="Running") == 4
    assert value(registry, "gpufleet_workloads", queue="vision", phase="Pending") == 0
    assert value(registry, "gpufleet_workloads", queue="nlp", phase="Pending") == 3


def test_oldest_pending_is_the_earliest_over_groups_and_absent_without_pending(
    fleet: FakeFleet, registry: CollectorRegistry
) -> None:
    fleet.groups.append(
        WorkloadGroup(queue="nlp", phase=WorkloadPhase.PENDING, count=1, oldest_since=1_600_000_000)
    )
    name = "gpufleet_queue_oldest_pending_timestamp_seconds"
    assert value(registry, name, queue="nlp") == 1_600_000_000
    assert value(registry, name, queue="vision") is None


@pytest.mark.parametrize(
    ("model", "fields", "field_name"),
    [
        (PoolState, {"capacity": -1}, "capacity"),
        (PoolState, {"site": ""}, "site"),
        (SiteState, {"connection": "Flaky"}, "connection"),
        (QueueShare, {"pending": -0.5}, "pending"),
        (WorkloadGroup, {"phase": "Sleeping"}, "phase"),
    ],
)
def test_bad_input_is_rejected_naming_the_field(
    model: type[PoolState | SiteState | QueueShare | WorkloadGroup],
    fields: dict[str, object],
    field_name: str,
) -> None:
    valid: dict[type, dict[str, object]] = {
        PoolState: {
            "name": "p",
            "site": "s",
            "accelerator_class": "c",
            "capacity": 1,
            "allocated": 0,
            "free": 1,
        },
        SiteState: {"name": "s", "connection": "Connected", "power_in_use_watts": 0},
        QueueShare: {
            "queue": "q",
            "accelerator_class": "c",
            "deserved": 0,
            "fair_share": 0,
            "allocated": 0,
            "pending": 0,
        },
        WorkloadGroup: {"queue": "q", "phase": "Pending", "count": 0},
    }
    model.model_validate(valid[model])  # the baseline is valid
    with pytest.raises(ValidationError) as excinfo:
        model.model_validate(valid[model] | fields)
    assert excinfo.value.errors()[0]["loc"] == (field_name,)


groups = st.lists(
    st.builds(
        WorkloadGroup,
        queue=st.sampled_from(["a", "b", "c"]),
        phase=st.sampled_from(list(WorkloadPhase)),
        count=st.integers(min_value=0, max_value=50),
    ),
    max_size=20,
)


@settings(max_examples=50, deadline=None)
@given(groups=groups)
def test_workload_gauge_sums_groups_of_the_same_queue_and_phase(
    groups: list[WorkloadGroup],
) -> None:
    registry = CollectorRegistry()
    registry.register(FleetCollector(FakeFleet(groups=groups)))
    for queue in {g.queue for g in groups}:
        for phase in WorkloadPhase:
            expected = sum(g.count for g in groups if g.queue == queue and g.phase is phase)
            got = registry.get_sample_value(
                "gpufleet_workloads", {"queue": queue, "phase": phase.value}
            )
            assert got == expected
