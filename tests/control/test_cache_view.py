"""A cycle's view of the cache carries everything the watches fed in, in containers of its own."""

from __future__ import annotations

from dataclasses import fields

from gpufleet.observed.cache import HUB, ClusterState, FleetCache


def test_view_carries_namespace_labels_that_queue_selectors_read() -> None:
    cache = FleetCache()
    cache.namespace_event(HUB, {"team": "vision"}, "team-vision")
    view = cache.view()
    assert view.clusters[HUB].namespaces == {"team-vision": {"team": "vision"}}


def test_view_copies_every_field_of_a_cluster_and_owns_its_containers() -> None:
    cache = FleetCache()
    state = cache.cluster("member")
    state.namespaces["a"] = {"k": "v"}
    state.synced.add("pods")
    state.connected, state.reason, state.message = True, "Connected", "ok"
    state.since, state.lease_renewed_at = 12.0, 34.0
    copied = cache.view().clusters["member"]
    for f in fields(ClusterState):
        assert getattr(copied, f.name) == getattr(state, f.name), f.name
    cache.namespace_event("member", None, "a")
    assert copied.namespaces == {"a": {"k": "v"}}, "a view must not change under a later event"
