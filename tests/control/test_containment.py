"""One object that cannot be used is set aside with its rule; the rest of the fleet schedules.

Each test builds a fleet with one hostile object and a healthy workload submitted beside it,
and checks the object's rule and that the core still admits the healthy one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from gpufleet import core
from gpufleet.control import loop as loop_module
from gpufleet.control.loop import SchedulingLoop
from gpufleet.control.summary import summarise
from gpufleet.observed.cache import HUB
from gpufleet.observed.translate import Inputs, translate

from .builders import World
from .test_loop_appliers import Connections, Writer

NOW = time.time()


def _inputs(w: World) -> Inputs:
    view = w.cache.view()
    return translate(view, {})


def _admitted(inputs: Inputs) -> set[str]:
    snap = core.Snapshot.build(
        inputs.sites, inputs.pools, inputs.nodes, inputs.queues, inputs.workloads, NOW
    )
    return {a.workload for a in core.schedule(snap).admissions}


def _healthy(w: World) -> World:
    w.queue("ok", ["ns"])
    w.workload("ns", "healthy", "ok")
    return w


def test_two_queues_naming_each_other_are_set_aside_and_others_schedule() -> None:
    w = _healthy(World())
    w.queue("a", ["ns"], parent="b")
    w.queue("b", ["ns"], parent="a")
    w.queue("below", ["ns"], parent="a")
    w.workload("ns", "in-cycle", "a")
    inputs = _inputs(w)
    assert inputs.rule("Queue", "a") == inputs.rule("Queue", "b") == "ParentCycle"
    assert "a -> b -> a" in inputs.invalid[("Queue", "a")]
    assert inputs.rule("Queue", "below") == "AncestorSetAside"
    assert inputs.blocked["ns/in-cycle"].rule == "QueueSetAside"
    assert _admitted(inputs) == {"ns/healthy"}


def test_a_queue_whose_parent_is_missing_is_not_a_root() -> None:
    w = _healthy(World())
    w.queue("orphan", ["ns"], parent="nowhere")
    w.workload("ns", "o", "orphan")
    inputs = _inputs(w)
    assert inputs.rule("Queue", "orphan") == "ParentNotFound"
    assert "orphan" not in {q.name for q in inputs.queues}
    assert inputs.blocked["ns/o"].rule == "QueueSetAside"
    assert _admitted(inputs) == {"ns/healthy"}


def test_a_child_under_a_leaf_with_running_work_waits_and_the_work_keeps_running() -> None:
    w = _healthy(World())
    w.queue("team", ["ns"])
    w.placed("ns", "busy", "team", "fra", "h100", ["fra-0"])
    w.queue("sub", ["ns"], parent="team")
    w.workload("ns", "on-team", "team")
    inputs = _inputs(w)
    assert inputs.rule("Queue", "sub") == "ParentHasWorkloads"
    # The leaf stays a leaf: its running work counts and its waiting work may still run.
    assert "ns/busy" in {x.key for x in inputs.workloads if x.placement is not None}
    assert _admitted(inputs) == {"ns/healthy", "ns/on-team"}


def test_running_work_on_a_queue_with_children_counts_and_is_never_reclaimed() -> None:
    """The core's own rule, for input that bypasses translation (docs/scheduling.md)."""
    sites = [core.Site("s", "DE")]
    pools = [core.Pool("p", "s", "c")]
    nodes = [core.Node(f"n{i}", "p", 8, 96_000, 2**40, 110) for i in range(2)]
    queues = [
        core.Queue("parent", deserved={"c": 8}),
        core.Queue("child", parent="parent", deserved={"c": 8}),
        core.Queue("other", deserved={"c": 8}),
    ]
    old = core.Workload(
        "ns/old", "parent", 1, 1, 8, ("c",), placement=core.Placement("s", "p", ("n0",), 0.0)
    )
    hungry = core.Workload("ns/new", "other", 2, 2, 8, ("c",), created_at=1.0)
    snap = core.Snapshot.build(sites, pools, nodes, queues, [old, hungry], NOW)
    parent = snap.queue_index["parent"]
    assert snap.allocated[parent][0] == 8
    result = core.schedule(snap)
    assert result.evictions == []


def test_a_pool_at_a_missing_site_gets_a_status_saying_so() -> None:
    w = _healthy(World())
    w.pool("stray", "nowhere", "nvidia-h100")
    inputs = _inputs(w)
    assert inputs.rule("GpuPool", "stray") == "SiteNotFound"
    summary = summarise(w.cache.view(), inputs, None, NOW)
    valid = _condition(summary.pool_status["stray"], "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "SiteNotFound")
    assert summary.pool_status["stray"]["capacity"] is None
    assert _admitted(inputs) == {"ns/healthy"}


def test_a_second_site_on_the_same_cluster_is_set_aside_with_the_first_named() -> None:
    w = _healthy(World())
    w.site("ams-fr", "FR", local=False)
    w.pool("fr-pool", "ams-fr", "nvidia-h200")
    for cluster in ("ams", "ams-fr"):
        w.cache.cluster_identified(cluster, "uid-of-ams")
        w.connect(cluster)
    w.cache.sites["ams"]["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    w.cache.sites["ams-fr"]["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    w.workload("ns", "fr-only", "ok", residency={"jurisdictions": ["FR"]})
    inputs = _inputs(w)
    assert inputs.rule("Site", "ams-fr") == "ClusterClaimed"
    assert "Site 'ams'" in inputs.invalid[("Site", "ams-fr")]
    assert inputs.rule("GpuPool", "fr-pool") == "SiteNotFound"
    assert "ams-fr" in inputs.parsed_sites  # its connection stays: that is how it is known
    # No French site is left: the FR-only workload waits, the healthy one runs.
    assert _admitted(inputs) == {"ns/healthy"}
    summary = summarise(w.cache.view(), inputs, None, NOW)
    assert _condition(summary.site_status["ams-fr"], "Valid")["reason"] == "ClusterClaimed"


def test_a_member_site_on_the_hubs_own_cluster_is_refused_when_local_sites_use_it() -> None:
    w = World()
    w.cache.cluster_identified(HUB, "uid-of-hub")
    w.cache.cluster_identified("ams", "uid-of-hub")
    assert _inputs(w).rule("Site", "ams") == "ClusterClaimed"


def test_a_node_claimed_by_two_local_sites_is_used_by_neither_and_both_say_why() -> None:
    w = _healthy(World(nodes=2))
    w.site("fr", "FR", local=True)
    w.pool("fr-pool", "fr", "nvidia-h100")
    # fr selects fra-0 too: its local selector matches site=fra on that node by a relabel.
    w.cache.sites["fr"]["spec"]["nodes"]["local"]["nodeSelector"] = {
        "matchLabels": {"pool": "h100"}
    }
    w.cache.pools["fr-pool"]["spec"]["nodeSelector"] = {"pool": "h100"}
    w.workload("ns", "fr-only", "ok", residency={"jurisdictions": ["FR"]})
    inputs = _inputs(w)
    used = {n.name for n in inputs.nodes}
    assert f"{HUB}|fra-0" not in used
    assert f"{HUB}|fra-1" not in used
    assert any("also claimed by Site fr" in m for m in inputs.overlaps[("Site", "fra")])
    assert any("also claimed by Site fra" in m for m in inputs.overlaps[("Site", "fr")])
    admitted = _admitted(inputs)
    assert "ns/fr-only" not in admitted  # never on a German node
    summary = summarise(w.cache.view(), inputs, None, NOW)
    for owner in ("fra", "fr"):
        assert _condition(summary.site_status[owner], "Valid")["reason"] == "NodesOverlap"
    for pool in ("h100", "fr-pool"):
        assert _condition(summary.pool_status[pool], "Valid")["reason"] == "NodesOverlap"


def test_a_node_two_pools_of_one_site_select_is_used_by_neither() -> None:
    w = World(nodes=1)
    w.pool("h100-bis", "fra", "nvidia-h100")
    w.cache.pools["h100-bis"]["spec"]["nodeSelector"] = {"pool": "h100"}
    inputs = _inputs(w)
    assert f"{HUB}|fra-0" not in {n.name for n in inputs.nodes}
    assert inputs.overlaps[("GpuPool", "h100")] == [
        "node fra-0 is also claimed by GpuPool h100-bis"
    ]


# -- the loop: an object the core refuses costs one object, not the cycle -----------------


@pytest.fixture
def no_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_module, "create_pods", lambda client, plans: len(plans))
    monkeypatch.setattr(loop_module, "delete_pods", lambda client, keys: len(keys))


@pytest.fixture
def loops() -> Iterator[list[SchedulingLoop]]:
    made: list[SchedulingLoop] = []
    yield made
    for loop in made:
        loop.pool.shutdown()
        loop.events.shutdown()


def test_a_model_error_naming_one_object_sets_it_aside_and_the_cycle_goes_on(
    no_pods: None, loops: list[SchedulingLoop], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _healthy(World())
    w.queue("cursed", ["ns"])
    w.workload("ns", "victim", "cursed")
    real = core.Snapshot.build

    def build(sites: Any, pools: Any, nodes: Any, queues: Any, work: Any, now: float) -> Any:
        # A refusal the translation did not foresee, naming one queue.
        if any(q.name == "cursed" for q in queues):
            raise core.ModelError("Queue", "cursed", "spec", "is refused by a future rule")
        return real(sites, pools, nodes, queues, work, now)

    monkeypatch.setattr(loop_module.core.Snapshot, "build", staticmethod(build))
    writer = Writer()
    loop = SchedulingLoop(w.cache, Connections(), writer, origin="gpufleet")  # type: ignore[arg-type]
    loops.append(loop)
    loop.cycle()
    assert ("healthy", "Admitted") in writer.written
    victim = w.cache.workloads["ns/victim"]["status"]
    assert victim["verdicts"][0]["rule"] == "QueueSetAside"
    # Remembered until the queue changes: the next cycle does not pay for it again.
    assert ("Queue", "cursed") in loop._refused


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)
