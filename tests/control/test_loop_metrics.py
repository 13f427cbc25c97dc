"""The loop's event metrics: admission waits from the last requeue, fenced sites, gone queues."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gpufleet.control.loop import SchedulingLoop
from gpufleet.control.statuses import rfc3339
from gpufleet.metrics import OperatorMetrics

from .builders import World

WAIT_SUM = "gpufleet_admission_wait_duration_seconds_sum"
WAIT_COUNT = "gpufleet_admission_wait_duration_seconds_count"


class FakeWriter:
    """Applies status patches as the API server would (merge patch) and records them."""

    def __init__(self) -> None:
        self.rv = 1000
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def patch_status(
        self, kind: str, body: dict[str, Any], status: dict[str, Any], *, cas: bool = True
    ) -> dict[str, Any]:
        self.rv += 1
        merged = {
            k: v for k, v in {**(body.get("status") or {}), **status}.items() if v is not None
        }
        self.patches.append((kind, body["metadata"]["name"], status))
        return {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(self.rv)},
            "status": merged,
        }

    def event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        pass


class NoConnections:
    """No member clusters: pods are neither created nor deleted."""

    connections: dict[str, Any] = {}

    def reconcile(self, sites: Any) -> None:
        pass


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def world() -> World:
    return World().queue("q", ["ns"])


@pytest.fixture
def loop(world: World, registry: CollectorRegistry) -> Iterator[SchedulingLoop]:
    loop = SchedulingLoop(
        world.cache,
        NoConnections(),  # type: ignore[arg-type]
        FakeWriter(),  # type: ignore[arg-type]
        origin="gpufleet",
        metrics=OperatorMetrics(registry),
        site_loss_after=90.0,
    )
    yield loop
    loop.pool.shutdown()
    loop.events.shutdown()


def waiting(world: World, name: str, created: float, status: dict[str, Any] | None) -> None:
    body = world.workload("ns", name, "q", status=status)
    body["metadata"]["creationTimestamp"] = rfc3339(created)
    world.cache.put_object("Workload", f"ns/{name}", body)


def admitted_false(at: float, reason: str) -> dict[str, Any]:
    return {
        "type": "Admitted",
        "status": "False",
        "reason": reason,
        "message": "not placed",
        "lastTransitionTime": rfc3339(at),
    }


def test_a_requeued_workload_waits_from_its_requeue_not_from_its_creation(
    world: World, loop: SchedulingLoop, registry: CollectorRegistry
) -> None:
    now = time.time()
    # Created an hour ago, ran, was preempted a minute ago.
    status = {
        "phase": "Preempted",
        "epoch": 1,
        "conditions": [admitted_false(now - 60, "Preempted")],
    }
    waiting(world, "requeued", now - 3600, status)
    loop.cycle()
    assert registry.get_sample_value(WAIT_COUNT, {"queue": "q"}) == 1
    wait = registry.get_sample_value(WAIT_SUM, {"queue": "q"})
    assert wait is not None
    assert 59 <= wait <= 90


def test_a_workload_never_admitted_waits_from_its_creation(
    world: World, loop: SchedulingLoop, registry: CollectorRegistry
) -> None:
    now = time.time()
    # Explained a minute ago (Admitted=False since then), but waiting since its creation.
    status = {"phase": "Pending", "conditions": [admitted_false(now - 60, "Waiting")]}
    waiting(world, "fresh", now - 3600, status)
    loop.cycle()
    wait = registry.get_sample_value(WAIT_SUM, {"queue": "q"})
    assert wait is not None
    assert 3599 <= wait <= 3630


def test_a_workload_moved_off_a_fenced_site_counts_as_a_site_fenced_eviction(
    world: World, loop: SchedulingLoop, registry: CollectorRegistry
) -> None:
    now = time.time()
    # ams has been silent for long, its workloads already know, and a person declared it lost.
    world.connect("ams", connected=False, renewed=now - 1000)
    world.declare_lost("ams", at=now - 5)
    for name, on_loss in (("movable", "Requeue"), ("patient", "Wait")):
        body = world.placed("ns", name, "q", "ams", "h200", ["ams-0"], onSiteLoss=on_loss)
        body["status"]["conditions"] = [
            {
                "type": "SiteReachable",
                "status": "False",
                "reason": "SiteUnreachable",
                "message": "site ams does not answer",
                "lastTransitionTime": rfc3339(now - 900),
            }
        ]
        world.cache.put_object("Workload", f"ns/{name}", body)
    loop.cycle()
    evictions = "gpufleet_evictions_total"
    assert registry.get_sample_value(evictions, {"reason": "SiteFenced"}) == 1
    moved = world.cache.workloads["ns/movable"]["status"]
    assert moved["phase"] == "Pending"
    assert "placement" not in moved


def test_a_deleted_queue_loses_its_admission_wait_series_and_the_others_keep_theirs(
    world: World, loop: SchedulingLoop, registry: CollectorRegistry
) -> None:
    world.queue("gone", ["other"])
    world.workload("ns", "a", "q")
    world.workload("other", "b", "gone")
    loop.cycle()
    assert registry.get_sample_value(WAIT_COUNT, {"queue": "gone"}) == 1
    world.cache.put_object("Queue", "gone", None)
    loop.cycle()
    assert registry.get_sample_value(WAIT_COUNT, {"queue": "gone"}) is None
    assert registry.get_sample_value(WAIT_COUNT, {"queue": "q"}) == 1


def test_an_admission_counts_its_accelerators_by_queue_site_and_class(
    world: World, loop: SchedulingLoop, registry: CollectorRegistry
) -> None:
    world.workload("ns", "a", "q", gpus=8)
    loop.cycle()
    samples = [
        s
        for family in registry.collect()
        if family.name == "gpufleet_queue_admitted_accelerators"
        for s in family.samples
        if s.name.endswith("_total")
    ]
    # Every (queue, site, class) that can admit has a series, from 0 (the world's two
    # pools): the admission went to one.
    got = {
        (s.labels["queue"], s.labels["site"], s.labels["accelerator_class"]): s.value
        for s in samples
    }
    assert sorted(got.values()) == [0.0, 8.0]
    assert set(got) == {("q", "fra", "nvidia-h100"), ("q", "ams", "nvidia-h200")}
