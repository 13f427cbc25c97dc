"""Event metrics: cycles, admissions, preemptions and evictions."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gpufleet.metrics import EvictionReason, OperatorMetrics, PreemptionReason


def test_a_cycle_counts_observes_and_stamps_the_time(
    registry: CollectorRegistry, events: OperatorMetrics
) -> None:
    events.observe_cycle(0.3, finished_at=1_700_000_123.5)
    events.observe_cycle(0.004, finished_at=1_700_000_124.0)
    assert registry.get_sample_value("gpufleet_scheduling_cycles_total") == 2
    assert registry.get_sample_value("gpufleet_scheduling_cycle_duration_seconds_count") == 2
    assert registry.get_sample_value(
        "gpufleet_scheduling_cycle_duration_seconds_sum"
    ) == pytest.approx(0.304)
    assert (
        registry.get_sample_value(
            "gpufleet_scheduling_cycle_duration_seconds_bucket", {"le": "0.005"}
        )
        == 1
    )
    assert (
        registry.get_sample_value("gpufleet_scheduling_last_cycle_timestamp_seconds")
        == 1_700_000_124.0
    )


def test_a_cycle_that_raises_is_not_counted(
    registry: CollectorRegistry, events: OperatorMetrics
) -> None:
    with events.time_cycle():
        pass
    with pytest.raises(RuntimeError), events.time_cycle():
        raise RuntimeError("boom")
    assert registry.get_sample_value("gpufleet_scheduling_cycles_total") == 1


def test_every_reason_is_exported_as_zero_before_any_event(
    registry: CollectorRegistry, events: OperatorMetrics
) -> None:
    for preemption in PreemptionReason:
        assert (
            registry.get_sample_value("gpufleet_preemptions_total", {"reason": preemption.value})
            == 0
        )
    for eviction in EvictionReason:
        assert (
            registry.get_sample_value("gpufleet_evictions_total", {"reason": eviction.value}) == 0
        )


def test_preemptions_and_evictions_count_by_reason(
    registry: CollectorRegistry, events: OperatorMetrics
) -> None:
    events.count_preemption(PreemptionReason.RECLAIM, 3)
    events.count_eviction(EvictionReason.SITE_FENCED)
    assert registry.get_sample_value("gpufleet_preemptions_total", {"reason": "Reclaim"}) == 3
    assert (
        registry.get_sample_value("gpufleet_preemptions_total", {"reason": "PriorityInQueue"}) == 0
    )
    assert registry.get_sample_value("gpufleet_evictions_total", {"reason": "SiteFenced"}) == 1


def test_free_text_reasons_are_refused(events: OperatorMetrics) -> None:
    with pytest.raises(ValueError, match="NodeOnFire"):
        events.count_eviction("NodeOnFire")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.observe_cycle(-1), "duration_seconds must be >= 0"),
        (lambda e: e.observe_admission("q", -5), "wait_seconds must be >= 0"),
        (lambda e: e.observe_admission("", 5), "queue must be a non-empty"),
        (lambda e: e.count_preemption(PreemptionReason.RECLAIM, 0), "count must be >= 1"),
    ],
)
def test_bad_values_are_refused_naming_the_argument(call: object, message: str) -> None:
    events = OperatorMetrics(CollectorRegistry())
    with pytest.raises(ValueError, match=message):
        call(events)  # type: ignore[operator]


def test_admission_wait_is_per_queue_and_forgotten_with_the_queue(
    registry: CollectorRegistry, events: OperatorMetrics
) -> None:
    events.observe_admission("nlp", 45)
    events.observe_admission("vision", 2)
    count = "gpufleet_admission_wait_duration_seconds_count"
    assert registry.get_sample_value(count, {"queue": "nlp"}) == 1
    assert (
        registry.get_sample_value(
            "gpufleet_admission_wait_duration_seconds_bucket", {"queue": "nlp", "le": "30.0"}
        )
        == 0
    )
    events.forget_queue("nlp")
    events.forget_queue("never-seen")
    assert registry.get_sample_value(count, {"queue": "nlp"}) is None
    assert registry.get_sample_value(count, {"queue": "vision"}) == 1


def test_admitted_accelerators_count_by_site_and_class_and_go_with_the_queue(
    registry: CollectorRegistry, events: OperatorMetrics
) -> None:
    name = "gpufleet_queue_admitted_accelerators_total"
    where = {"queue": "nlp", "site": "fra", "accelerator_class": "nvidia-h100"}
    events.observe_admission("nlp", 5, accelerators=8, site="fra", accelerator_class="nvidia-h100")
    events.observe_admission("nlp", 1, accelerators=2, site="fra", accelerator_class="nvidia-h100")
    events.observe_admission("nlp", 1)  # no placement given: only the wait is observed
    assert registry.get_sample_value(name, where) == 10
    with pytest.raises(ValueError, match="accelerators must be >= 0"):
        events.observe_admission("nlp", 1, accelerators=-1, site="fra", accelerator_class="x")
    events.forget_queue("nlp")
    assert registry.get_sample_value(name, where) is None


def test_admitted_series_start_at_zero_and_go_with_their_pool(
    registry: CollectorRegistry, events: OperatorMetrics
) -> None:
    # Prometheus' increase() cannot see a series' first value: each is exported at 0
    # before its first admission.
    name = "gpufleet_queue_admitted_accelerators_total"
    fra = {"queue": "nlp", "site": "fra", "accelerator_class": "nvidia-h100"}
    osl = {"queue": "nlp", "site": "osl", "accelerator_class": "nvidia-h200"}
    events.retain_admitted({("nlp", "fra", "nvidia-h100"), ("nlp", "osl", "nvidia-h200")})
    assert registry.get_sample_value(name, fra) == 0
    events.observe_admission("nlp", 5, accelerators=8, site="osl", accelerator_class="nvidia-h200")
    events.retain_admitted({("nlp", "osl", "nvidia-h200")})  # fra's pool is gone
    assert registry.get_sample_value(name, fra) is None
    assert registry.get_sample_value(name, osl) == 8
    events.retain_queues([])  # and the Queue
    assert registry.get_sample_value(name, osl) is None


def test_build_info_names_the_version(registry: CollectorRegistry, events: OperatorMetrics) -> None:
    samples = [
        s
        for family in registry.collect()
        if family.name == "gpufleet_build_info"
        for s in family.samples
    ]
    assert len(samples) == 1
    assert samples[0].labels["version"] == "9.9.9"
    assert samples[0].value == 1


def test_two_registries_do_not_share_counters() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    OperatorMetrics(first).observe_cycle(0.1)
    OperatorMetrics(second)
    assert first.get_sample_value("gpufleet_scheduling_cycles_total") == 1
    assert second.get_sample_value("gpufleet_scheduling_cycles_total") == 0
