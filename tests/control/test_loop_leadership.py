"""The loop writes only while its replica leads; a standby keeps its caches warm."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gpufleet.control.elector import NotLeaderError
from gpufleet.control.loop import SchedulingLoop

from .builders import World
from .test_loop_appliers import Connections, Writer, pods, scheduling_loop, world

__all__ = ["pods", "world"]  # fixtures, used by name


class Gate:
    """Leads for the first `checks` checks, then its renew deadline has passed."""

    def __init__(self, checks: int) -> None:
        self.left = checks

    def may_write(self) -> bool:
        return self.left > 0

    def check(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise NotLeaderError("deadline passed")


@pytest.fixture
def loops() -> Iterator[list[SchedulingLoop]]:
    made: list[SchedulingLoop] = []
    yield made
    for loop in made:
        loop.pool.shutdown()
        loop.events.shutdown()


def gated(world: World, writer: Writer, gate: Gate, loops: list[SchedulingLoop]) -> SchedulingLoop:
    loop = scheduling_loop(world, writer)
    loop.gate = gate
    loops.append(loop)
    return loop


def test_a_replica_that_does_not_lead_writes_nothing(
    world: World, pods: dict[str, list[tuple[str, str]]], loops: list[SchedulingLoop]
) -> None:
    writer = Writer()
    loop = gated(world, writer, Gate(0), loops)
    with pytest.raises(NotLeaderError):
        loop.cycle()
    assert writer.written == []
    assert all(not made for made in pods.values()), pods  # no pod, Service or deletion


def test_a_deadline_passing_mid_cycle_stops_the_writes_that_follow(
    world: World, pods: dict[str, list[tuple[str, str]]], loops: list[SchedulingLoop]
) -> None:
    writer = Writer()
    # Lifecycle (3 batches, nothing in them), gang Services (1 batch, none), the eviction
    # batch and its write: then no more.
    loop = gated(world, writer, Gate(6), loops)
    with pytest.raises(NotLeaderError):
        loop.cycle()
    assert writer.written == [("low", "Preempted")]
    assert pods["created"] == []  # the admission that needed the room was never written


def test_with_the_lease_held_throughout_the_cycle_writes_as_without_election(
    world: World, pods: dict[str, list[tuple[str, str]]], loops: list[SchedulingLoop]
) -> None:
    writer = Writer()
    loop = gated(world, writer, Gate(10**6), loops)
    loop.cycle()
    assert ("high", "Admitted") in writer.written
    assert set(loop.last_steps) == {
        "view",
        "translate",
        "snapshot",
        "schedule",
        "apply",
        "statuses",
    }


def test_a_standby_translates_and_connects_but_writes_nothing(
    world: World, pods: dict[str, list[tuple[str, str]]], loops: list[SchedulingLoop]
) -> None:
    reconciled: list[set[str]] = []

    class Watching(Connections):
        def reconcile(self, sites: dict[str, object]) -> None:
            reconciled.append(set(sites))

    writer = Writer()
    loop = SchedulingLoop(world.cache, Watching(), writer, origin="gpufleet")  # type: ignore[arg-type]
    loops.append(loop)
    loop.gate = Gate(0)
    loop.warm()
    assert writer.written == []
    assert all(not made for made in pods.values()), pods  # no pod, Service or deletion
    assert reconciled
    assert reconciled[0]
    assert ("Workload", "ns/high") in loop.translator.parsed  # a takeover does not parse again
    assert loop.warm_cycles == 1
    assert loop.cycles == 0


def test_a_waiting_workloads_explanation_is_refreshed_at_most_every_interval(
    world: World, loops: list[SchedulingLoop]
) -> None:
    loop = scheduling_loop(world, Writer())
    loops.append(loop)
    loop.explain_interval_seconds = 3600
    status = {"phase": "Pending", "verdicts": [{}], "observedGeneration": 2}
    body = {"metadata": {"generation": 2}, "status": status}
    moved = {"phase": "Pending", "observedGeneration": 2, "queuePosition": 7}
    assert loop._explanation_due("ns/w", body, moved)  # never written by this replica
    loop._explained_at["ns/w"] = time.monotonic()
    assert not loop._explanation_due("ns/w", body, moved)  # only its position moved
    assert loop._explanation_due("ns/w", body, {**moved, "observedGeneration": 3})
    assert loop._explanation_due("ns/w", body, {**moved, "phase": "Preempted"})
    assert loop._explanation_due("ns/w", {**body, "status": {"phase": "Pending"}}, moved)
    loop._explained_at["ns/w"] = time.monotonic() - 3600
    assert loop._explanation_due("ns/w", body, moved)


def test_waiting_workloads_are_explained_only_once_their_sites_are_listed(
    loops: list[SchedulingLoop],
) -> None:
    world = World(nodes=1).queue("q", ["ns"])
    world.workload("ns", "big", "q", gpus=8, replicas=4)  # fits nowhere: it waits
    world.cache.clusters["ams"].synced = set()  # answering, its nodes not listed yet
    writer = Writer()
    loop = scheduling_loop(world, writer)
    loops.append(loop)
    loop.cycle()
    assert writer.written == []
    world.connect("ams")
    loop.cycle()
    assert writer.written == [("big", "Pending")]


def test_a_new_leader_catches_up_with_the_old_leaders_admissions_before_it_admits(
    loops: list[SchedulingLoop],
) -> None:
    """The standby's watch has not yet delivered `a`, created and admitted by the old leader:
    counted from that cache, `q` has room for `b`, and admitting it would take `q` past its
    limit (each admission's compare-and-swap guards only its own workload)."""
    limited = [{"acceleratorClass": "nvidia-h100", "deserved": 8, "limit": 8}]
    world = World(nodes=2).queue("q", ["ns"], resources=limited)
    world.workload("ns", "b", "q", acceleratorClasses=["nvidia-h100"])
    truth = World(nodes=2)  # what the API server holds: `a` admitted by the old leader
    truth._rv = 100
    admitted = truth.placed("ns", "a", "q", "fra", "h100", ["fra-0"], phase="Admitted")
    admitted["spec"]["acceleratorClasses"] = ["nvidia-h100"]
    listed = {"ns/a": admitted, "ns/b": world.cache.workloads["ns/b"]}
    caught_up: list[int] = []

    def catch_up() -> None:
        caught_up.append(world.cache.catch_up("Workload", listed, listed_at=200))

    writer = Writer()
    loop = gated(world, writer, Gate(10**6), loops)
    loop.gate = Gate(0)
    loop.catch_up = catch_up
    loop.turn()  # a standby: a warm cycle, no catch-up
    assert caught_up == []
    loop.gate = Gate(10**6)  # takes the lead
    loop.turn()
    loop.turn()
    assert ("b", "Admitted") not in writer.written, "q would hold 16 of its limit of 8"
    assert ("a", "Admitted") not in writer.written
    assert caught_up == [1], "one catch-up per takeover, before the first cycle"
    assert world.cache.workloads["ns/a"]["status"]["phase"] == "Admitted"
    loop.gate = Gate(0)
    loop.turn()
    loop.gate = Gate(10**6)
    loop.turn()
    assert len(caught_up) == 2, "leading again catches up again"


def test_a_failed_catch_up_writes_nothing_and_is_tried_again(
    world: World, loops: list[SchedulingLoop]
) -> None:
    attempts: list[float] = []

    def catch_up() -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise ConnectionError("the API server did not answer")

    writer = Writer()
    loop = gated(world, writer, Gate(10**6), loops)
    loop.catch_up = catch_up
    with pytest.raises(ConnectionError):
        loop.turn()
    assert writer.written == []
    loop.turn()
    assert len(attempts) == 2
    assert ("high", "Admitted") in writer.written or ("low", "Preempted") in writer.written


def test_the_cache_catches_up_with_a_list_newer_objects_in_deleted_ones_out() -> None:
    world = World(nodes=1).queue("q", ["ns"])
    world.workload("ns", "kept", "q")  # rv 3 ... (the World's counter)
    gone = world.workload("ns", "gone", "q")
    newer_than_list = world.workload("ns", "new", "q")  # created after the LIST's snapshot
    stale = dict(world.cache.workloads["ns/kept"])
    fresh = {**stale, "metadata": {**stale["metadata"], "resourceVersion": "50"}}
    listed_at = int(newer_than_list["metadata"]["resourceVersion"]) - 1
    changed = world.cache.catch_up("Workload", {"ns/kept": fresh}, listed_at)
    assert changed == 2
    assert world.cache.workloads["ns/kept"] is fresh
    assert "ns/gone" not in world.cache.workloads, gone["metadata"]
    assert "ns/new" in world.cache.workloads, "seen by the watch after the list: not deleted"
    world.cache.put_object("Workload", "ns/kept", stale)  # a late watch event: older
    assert world.cache.workloads["ns/kept"] is fresh


def test_an_object_the_watch_deletes_while_the_catch_up_lists_stays_deleted() -> None:
    world = World(nodes=1).queue("q", ["ns"])
    body = world.workload("ns", "w", "q")
    listed = {"ns/w": body}  # the LIST's snapshot, taken before the delete
    world.cache.begin_catch_up()
    world.cache.put_object("Workload", "ns/w", None)  # the watch's DELETED event
    world.cache.catch_up("Workload", listed, listed_at=int(body["metadata"]["resourceVersion"]))
    world.cache.end_catch_up()
    assert "ns/w" not in world.cache.workloads, "a deleted workload came back"
    world.cache.catch_up("Workload", listed, listed_at=0)  # no catch-up open: as listed
    assert "ns/w" in world.cache.workloads


def test_leading_again_catches_up_again_even_if_no_turn_saw_the_lead_lost(
    world: World, loops: list[SchedulingLoop]
) -> None:
    caught_up: list[int] = []
    loop = gated(world, Writer(), Gate(10**6), loops)
    loop.catch_up = lambda: caught_up.append(1)
    loop.turn()
    loop.turn()
    assert len(caught_up) == 1
    loop.lead_lost()  # lost and won back between two turns
    loop.turn()
    assert len(caught_up) == 2


def test_a_list_whose_continue_token_expired_is_taken_again() -> None:
    from kubernetes.client.exceptions import ApiException

    from gpufleet.api.v1alpha1 import KIND_INFO
    from gpufleet.control.operator import _list_kind

    def item(name: str) -> dict[str, object]:
        return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": "5"}}

    calls: list[str | None] = []

    class Custom:
        def list_cluster_custom_object(self, *args: object, **kw: object) -> dict[str, object]:
            token = kw.get("_continue")
            calls.append(token if isinstance(token, str) else None)
            if token is None:
                return {"items": [item("a")], "metadata": {"resourceVersion": "9", "continue": "t"}}
            if calls.count("t") == 1:
                raise ApiException(status=410, reason="Expired")
            return {"items": [item("b")], "metadata": {"resourceVersion": "9"}}

    items, listed_at = _list_kind(Custom(), KIND_INFO["Workload"])
    assert calls == [None, "t", None, "t"], "started again from the first page"
    assert set(items) == {"ns/a", "ns/b"}
    assert listed_at == 9
