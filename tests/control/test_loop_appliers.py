"""The loop's evict and admit steps: what they write, which pods they touch, what they report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from gpufleet import core
from gpufleet.control import loop as loop_module
from gpufleet.control.loop import SchedulingLoop
from gpufleet.control.writer import ConflictError
from gpufleet.observed.cache import HUB
from gpufleet.observed.translate import translate

from .builders import World


class Writer:
    """Merge-patches statuses as the API server would; refuses the named workloads' writes."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.rv = 1000
        self.written: list[tuple[str, str | None]] = []  # (workload, phase written)

    def patch_status(
        self, kind: str, body: dict[str, Any], status: dict[str, Any], *, cas: bool = True
    ) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if kind == "Workload" and name in self.refuse:
            raise ConflictError(f"{name} changed")
        self.rv += 1
        if kind == "Workload":
            self.written.append((name, status.get("phase")))
        merged = {**(body.get("status") or {}), **status}
        return {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(self.rv)},
            "status": {k: v for k, v in merged.items() if v is not None},
        }

    def event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        pass


class Connections:
    """A connection per cluster whose client is the cluster's name."""

    connections = {c: SimpleNamespace(api_client=c) for c in (HUB, "ams")}

    def reconcile(self, sites: Any) -> None:
        pass


@pytest.fixture
def pods(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The (cluster, pod key) of every pod the loop creates and deletes."""
    seen: dict[str, list[Any]] = {"created": [], "deleted": [], "graces": [], "manifests": []}

    def create(client: str, plans: list[Any]) -> int:
        seen["created"] += [(client, f"{p.namespace}/{p.name}") for p in plans]
        seen["manifests"] += [p.manifest for p in plans]
        return len(plans)

    def delete(client: str, keys: list[str], grace: int | None = None) -> int:
        seen["deleted"] += [(client, k) for k in keys]
        seen["graces"] += [grace] * len(keys)
        return len(keys)

    monkeypatch.setattr(loop_module, "create_pods", create)
    monkeypatch.setattr(loop_module, "delete_pods", delete)
    return seen


@pytest.fixture
def world() -> World:
    """One node per site, both taken by low-priority work; `high` waits for one of them."""
    world = World(nodes=1).queue("q", ["ns"])
    world.placed("ns", "low", "q", "fra", "h100", ["fra-0"], priority=0)
    world.pod(HUB, "ns", "low", 0, "fra-0")
    world.placed("ns", "low2", "q", "ams", "h200", ["ams-0"], priority=0)
    world.pod("ams", "ns", "low2", 0, "ams-0")
    world.workload("ns", "high", "q", priority=100)
    return world


def scheduling_loop(world: World, writer: Writer) -> SchedulingLoop:
    return SchedulingLoop(
        world.cache,
        Connections(),  # type: ignore[arg-type]
        writer,  # type: ignore[arg-type]
        origin="gpufleet",
    )


@pytest.fixture
def stop() -> Iterator[list[SchedulingLoop]]:
    loops: list[SchedulingLoop] = []
    yield loops
    for loop in loops:
        loop.pool.shutdown()
        loop.events.shutdown()


def test_a_recorded_eviction_stops_its_pods_and_makes_room_for_its_preemptor(
    world: World, pods: dict[str, list[Any]], stop: list[SchedulingLoop]
) -> None:
    writer = Writer()
    loop = scheduling_loop(world, writer)
    stop.append(loop)
    loop.cycle()
    assert ("low", "Preempted") in writer.written
    assert ("high", "Admitted") in writer.written
    # The victim gets its grace period (the default); the preemptor's pod waits for it.
    assert pods["deleted"] == [(HUB, "ns/low-e1-0")]
    assert pods["graces"] == [30]
    assert pods["created"] == []
    # Its deletion echoed back: the victim's pod is Terminating on the preemptor's node.
    victim = world.cache.clusters[HUB].pods["ns/low-e1-0"]
    world.cache.pod_event(HUB, replace(victim, deleting=True), victim.key)
    loop.cycle()
    assert pods["created"] == []
    held = _condition(world.cache.workloads["ns/high"], "PodsHeld")
    assert (held["status"], held["reason"]) == ("True", "WaitingForNodes")
    assert "ns/low (low-e1-0 on fra-0)" in held["message"]
    # The node is still reserved for it: a workload that preempts nobody finds no room.
    world.workload("ns", "other", "q", priority=0)
    loop.cycle()
    assert ("other", "Admitted") not in writer.written
    verdicts = world.cache.workloads["ns/other"]["status"]["verdicts"]
    assert {v["site"]: v["rule"] for v in verdicts}["fra"] == "InsufficientAccelerators"
    # Gone: the preemptor's pod is created, with the default grace period of its own.
    world.cache.pod_event(HUB, None, victim.key)
    loop.cycle()
    assert pods["created"] == [(HUB, "ns/high-e1-0")]
    assert pods["manifests"][0]["spec"]["terminationGracePeriodSeconds"] == 30
    held = _condition(world.cache.workloads["ns/high"], "PodsHeld")
    assert (held["status"], held["reason"]) == ("False", "NodesFree")


def _condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    conds = (body.get("status") or {}).get("conditions") or []
    return next(c for c in conds if c["type"] == type_)


def test_an_eviction_not_recorded_holds_back_the_admission_that_needed_its_room(
    world: World, pods: dict[str, list[Any]], stop: list[SchedulingLoop]
) -> None:
    writer = Writer(refuse=frozenset({"low"}))
    loop = scheduling_loop(world, writer)
    stop.append(loop)
    loop.cycle()
    assert not [name for name, phase in writer.written if phase in ("Preempted", "Admitted")]
    assert (pods["created"], pods["deleted"]) == ([], [])


def test_the_evict_step_reports_what_it_wrote_and_whose_room_it_did_not_make(
    world: World, pods: dict[str, list[Any]], stop: list[SchedulingLoop]
) -> None:
    loop = scheduling_loop(world, Writer(refuse=frozenset({"low2"})))
    stop.append(loop)
    view = world.cache.view()
    evictions = [
        core.Eviction("ns/low", "Preempted", "ns/high"),
        core.Eviction("ns/low2", "Preempted", "ns/other"),
        core.Eviction("ns/gone", "Reclaimed", "ns/third"),
    ]
    applied = loop._apply_evictions(view.workloads, translate(view, {}), evictions, time.time())
    assert applied.written == ("ns/low",)
    assert applied.not_written == ("ns/low2", "ns/gone")
    assert applied.room_not_made == {"ns/other", "ns/third"}
    assert applied.pods_deleted == 1
    assert pods["deleted"] == [(HUB, "ns/low-e1-0")]
