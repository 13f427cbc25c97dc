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
