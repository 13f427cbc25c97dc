"""Incremental translation: what is reused, and that it always equals a full translation."""

from __future__ import annotations

from gpufleet.observed.cache import HUB
from gpufleet.observed.incremental import IncrementalTranslator
from gpufleet.observed.translate import Inputs, translate

from .builders import World


def full(world: World) -> Inputs:
    view = world.cache.view()
    hub = view.clusters.get(HUB)
    return translate(view, hub.namespaces if hub is not None else {})


def same(a: Inputs, b: Inputs) -> bool:
    fields = ("sites", "pools", "nodes", "queues", "workloads", "blocked", "invalid")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


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
