"""Incremental translation: what is reused, and that it always equals a full translation."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from gpufleet.observed.cache import HUB, CacheView
from gpufleet.observed.incremental import IncrementalTranslator
from gpufleet.observed.records import NodeRecord
from gpufleet.observed.translate import Inputs, translate

from .builders import World


def full(world: World) -> Inputs:
    view = world.cache.view()
    hub = view.clusters.get(HUB)
    return translate(view, hub.namespaces if hub is not None else {})


def same(a: Inputs, b: Inputs) -> bool:
    fields = (
        "sites",
        "pools",
        "nodes",
        "queues",
        "workloads",
        "blocked",
        "invalid",
        "overlaps",
        "usable_clusters",
        "site_cluster",
    )
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def full_of(view: CacheView) -> Inputs:
    hub = view.clusters.get(HUB)
    return translate(view, hub.namespaces if hub is not None else {})


def world() -> World:
    w = World(nodes=2).queue("q", ["ns"])
    w.placed("ns", "run", "q", "fra", "h100", ["fra-0"])
    w.pod(HUB, "ns", "run", 0, "fra-0")
    w.workload("ns", "wait", "q")
    return w


def test_an_unchanged_fleet_reuses_everything() -> None:
    w = world()
    t = IncrementalTranslator()
    first = t.translate(w.cache.view())
    assert t.reused == "none"
    assert same(first, full(w))
    again = t.translate(w.cache.view())
    assert t.reused == "all"
    assert again is first


def test_a_pod_change_redoes_only_the_nodes() -> None:
    w = world()
    t = IncrementalTranslator()
    first = t.translate(w.cache.view())
    w.foreign_pod(HUB, "other", "p", "fra-1", gpus=8)  # another scheduler's pod takes a node
    second = t.translate(w.cache.view())
    assert t.reused == "objects"
    assert second.workloads is first.workloads
    assert second.nodes != first.nodes
    assert same(second, full(w))


def test_a_changed_workload_or_health_is_translated_again() -> None:
    w = world()
    t = IncrementalTranslator()
    t.translate(w.cache.view())
    w.workload("ns", "new", "q")
    assert same(t.translate(w.cache.view()), full(w))
    assert t.reused == "none"
    w.cache.health_changed("ams", False, "Unreachable", "no answer")
    after = t.translate(w.cache.view())
    assert t.reused == "none"
    assert same(after, full(w))
    assert not next(s for s in after.sites if s.name == "ams").connected


def test_unchanged_workloads_keep_their_derived_models_and_changed_ones_are_redone() -> None:
    w = world()
    t = IncrementalTranslator()
    first = {x.key: x for x in t.translate(w.cache.view()).workloads}
    w.queue("q", ["ns"], deserved=16)  # another object changed: everything is translated
    second = t.translate(w.cache.view())
    assert t.reused == "none"
    assert same(second, full(w))
    again = {x.key: x for x in second.workloads}
    assert again["ns/wait"] is first["ns/wait"], "requests derived again for an unchanged one"
    assert again["ns/run"] is first["ns/run"]
    w.workload("ns", "wait", "q", gpus=4, cpu="2")  # a new resourceVersion
    w.placed("ns", "run", "q", "fra", "h100", ["fra-1"])  # moved: another placement
    third = t.translate(w.cache.view())
    assert same(third, full(w))
    changed = {x.key: x for x in third.workloads}
    assert changed["ns/wait"].accelerators_per_replica == 4
    assert changed["ns/wait"].cpu_millis_per_replica == 2000
    assert changed["ns/run"].placement is not None
    assert changed["ns/run"].placement.nodes != first["ns/run"].placement.nodes  # type: ignore[union-attr]
    w.cache.put_object("Workload", "ns/wait", None)
    t.translate(w.cache.view())
    assert "ns/wait" not in t.derived, "a deleted workload's derived models are dropped"


def test_a_refused_workload_does_not_keep_old_translations_alive() -> None:
    """Its refusal is remembered as words, not as an exception whose traceback would hold
    every translation's frames (and their Inputs) for as long as it is remembered."""
    import gc
    import weakref

    w = world()
    body = w.cache.workloads["ns/run"]
    placement = body["status"]["placement"]
    two = [{"index": 0, "node": "fra-0"}, {"index": 1, "node": "fra-1"}]  # 1 replica: refused
    bad = {**body, "status": {**body["status"], "placement": {**placement, "replicas": two}}}
    w.cache.put_object("Workload", "ns/run", bad)
    t = IncrementalTranslator()
    made = []
    for i in range(5):
        w.queue("q", ["ns"], deserved=i + 1)
        inputs = t.translate(w.cache.view())
        assert ("Workload", "ns/run") in inputs.invalid
        made.append(weakref.ref(inputs))
    del inputs
    gc.collect()
    assert sum(r() is not None for r in made) <= 1


def write_status(w: World, kind: str, name: str, status: dict[str, Any]) -> None:
    """What a status patch does: the cache sees the object again with a new status."""
    table = {"Queue": w.cache.queues, "Site": w.cache.sites, "GpuPool": w.cache.pools}[kind]
    body = copy.deepcopy(table[name])
    body["status"] = status
    body["metadata"]["resourceVersion"] = w.rv()
    w.cache.put_object(kind, name, body)


FAIRNESS = {
    "resources": [
        {
            "acceleratorClass": "nvidia-h100",
            "allocated": 8,
            "fairShare": 16,
            "usage": 100.0,
            "fairUsage": 50.0,
        }
    ],
    "usageUpdatedAt": "2027-01-15T08:00:00Z",
    "starvedSince": "2027-01-15T07:00:00Z",
}


def test_a_status_write_reads_the_fairness_state_again_and_keeps_the_rest() -> None:
    w = world()
    t = IncrementalTranslator()
    first = t.translate(w.cache.view())
    write_status(w, "Queue", "q", FAIRNESS)
    write_status(w, "Site", "fra", {"powerInUseKw": 12.5})
    write_status(w, "GpuPool", "h100", {"capacity": 16, "allocated": 8, "free": 8})
    second = t.translate(w.cache.view())
    assert t.reused == "statuses"
    assert second.workloads is first.workloads
    assert same(second, full(w))
    q = next(x for x in second.queues if x.name == "q")
    assert (q.usage, q.fair_usage) == ({"nvidia-h100": 100.0}, {"nvidia-h100": 50.0})
    assert q.starved_since is not None
    assert second.queue_models["q"].status is not None


def test_a_status_write_with_a_pod_change_redoes_the_nodes_too() -> None:
    w = world()
    t = IncrementalTranslator()
    t.translate(w.cache.view())
    write_status(w, "Queue", "q", FAIRNESS)
    w.foreign_pod(HUB, "other", "p", "fra-1", gpus=8)
    after = t.translate(w.cache.view())
    assert t.reused == "objects"
    assert same(after, full(w))
    assert next(x for x in after.queues if x.name == "q").usage == {"nvidia-h100": 100.0}


def test_a_status_that_no_longer_parses_is_translated_in_full() -> None:
    w = world()
    t = IncrementalTranslator()
    t.translate(w.cache.view())
    write_status(
        w, "Queue", "q", {"resources": [{"acceleratorClass": "nvidia-h100", "usage": "lots"}]}
    )
    after = t.translate(w.cache.view())
    assert t.reused == "none"
    assert same(after, full(w))
    assert ("Queue", "q") in after.invalid


def test_spec_labels_and_deletions_are_not_status_writes() -> None:
    w = world()
    versions = dict(w.cache.versions)
    write_status(w, "Queue", "q", FAIRNESS)
    assert w.cache.versions["statuses"] == versions["statuses"] + 1
    assert w.cache.versions["objects"] == versions["objects"]
    body = copy.deepcopy(w.cache.queues["q"])
    body["metadata"]["labels"] = {"team": "a"}
    body["metadata"]["resourceVersion"] = w.rv()
    w.cache.put_object("Queue", "q", body)
    assert w.cache.versions["objects"] == versions["objects"] + 1
    w.queue("q", ["ns", "other"])
    assert w.cache.versions["objects"] == versions["objects"] + 2
    w.cache.put_object("Queue", "q", None)
    assert w.cache.versions["objects"] == versions["objects"] + 3
    t = IncrementalTranslator()
    t.translate(w.cache.view())
    body = copy.deepcopy(w.cache.workloads["ns/wait"])
    body["status"] = {"phase": "Pending"}
    body["metadata"]["resourceVersion"] = w.rv()
    w.cache.put_object("Workload", "ns/wait", body)  # a workload's status is read: objects
    t.translate(w.cache.view())
    assert t.reused == "none"


def test_claims_are_found_again_only_for_nodes_whose_record_changed() -> None:
    w = world()
    t = IncrementalTranslator()
    first = t.translate(w.cache.view())
    w.foreign_pod(HUB, "other", "p", "fra-1", gpus=8)
    # fra-0 leaves its pool: its labels no longer match the pool's selector.
    w.cache.node_event(
        HUB,
        NodeRecord(
            "fra-0",
            {"site": "fra"},
            {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1Ti", "pods": "110"},
            True,
            False,
        ),
        "fra-0",
    )
    second = t.translate(w.cache.view())
    assert t.reused == "objects"
    assert second.claims[(HUB, "fra-1")] is first.claims[(HUB, "fra-1")]
    assert second.claims[(HUB, "fra-0")][2] == ()
    assert same(second, full(w))
    w.workload("ns", "new", "q")  # a whole translation keeps them too
    third = t.translate(w.cache.view())
    assert t.reused == "none"
    assert third.claims[(HUB, "fra-1")] is first.claims[(HUB, "fra-1")]
    assert same(third, full(w))
    w.pool("h100", "fra", "nvidia-h100")  # the pool written again, same selector: kept
    assert t.translate(w.cache.view()).claims[(HUB, "fra-1")] is first.claims[(HUB, "fra-1")]
    w.cache.put_object("GpuPool", "h100", None)  # the pool gone: found again
    fourth = t.translate(w.cache.view())
    assert fourth.claims[(HUB, "fra-1")] is not first.claims[(HUB, "fra-1")]
    assert fourth.claims[(HUB, "fra-1")][2] == ()
    assert same(fourth, full(w))


def test_a_node_refusal_holds_its_node_until_it_ends_and_not_after() -> None:
    w = world()
    t = IncrementalTranslator()
    t0 = w.cache.view().taken_at
    t.translate(replace(w.cache.view(), taken_at=t0))
    w.cache.note_refusal(HUB, "fra-1", "nvidia.com/gpu", t0 + 60)  # a kubelet said no
    held = t.translate(replace(w.cache.view(), taken_at=t0 + 1))
    assert next(n for n in held.nodes if n.name.endswith("|fra-1")).accelerators == 0
    later = replace(w.cache.view(), taken_at=t0 + 61)  # nothing changed but the clock
    after = t.translate(later)
    assert next(n for n in after.nodes if n.name.endswith("|fra-1")).accelerators == 8
    assert same(after, full_of(later))


def test_a_status_write_is_read_even_without_a_resource_version() -> None:
    w = world()
    body = copy.deepcopy(w.cache.queues["q"])
    del body["metadata"]["resourceVersion"]
    w.cache.put_object("Queue", "q", body)
    t = IncrementalTranslator()
    t.translate(w.cache.view())
    body = copy.deepcopy(body)
    body["status"] = FAIRNESS
    w.cache.put_object("Queue", "q", body)
    after = t.translate(w.cache.view())
    assert t.reused == "statuses"
    assert next(x for x in after.queues if x.name == "q").usage == {"nvidia-h100": 100.0}
    assert same(after, full(w))
