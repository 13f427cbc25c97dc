"""A cycle's view of the cache carries everything the watches fed in, in containers of its own."""

from __future__ import annotations

from dataclasses import fields

from gpufleet.observed.cache import HUB, ClusterState, FleetCache
from gpufleet.observed.records import NodeRecord, PodRecord


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


def test_a_heartbeat_that_changes_nothing_recorded_is_not_a_change() -> None:
    cache = FleetCache()
    node = NodeRecord("n0", {"pool": "p"}, {"nvidia.com/gpu": "8"}, True, False)
    pod = PodRecord("ns", "p0", "uid", "n0", "Running", {}, False)
    cache.node_event(HUB, node, "n0")
    cache.pod_event(HUB, pod, "ns/p0")
    before, versions = cache.generation, dict(cache.versions)
    # The kubelet rewrites its Node (lastHeartbeatTime) and a pod's status time: the
    # records it makes are the same.
    cache.node_event(
        HUB, NodeRecord("n0", {"pool": "p"}, {"nvidia.com/gpu": "8"}, True, False), "n0"
    )
    cache.pod_event(HUB, PodRecord("ns", "p0", "uid", "n0", "Running", {}, False), "ns/p0")
    cache.node_event(HUB, None, "gone")  # deleting what was never there
    assert (cache.generation, cache.versions) == (before, versions)
    cache.node_event(
        HUB, NodeRecord("n0", {"pool": "p"}, {"nvidia.com/gpu": "8"}, False, False), "n0"
    )
    cache.pod_event(HUB, None, "ns/p0")
    assert cache.versions["nodes"] == versions["nodes"] + 2
    assert cache.generation == before + 2
