"""From API objects to the core's input: bad objects set aside, foreign pods subtracted."""

from __future__ import annotations

from gpufleet.observed.cache import HUB
from gpufleet.observed.translate import translate

from .builders import World


def test_malformed_workload_is_set_aside_with_the_field_named() -> None:
    w = World().queue("q", ["ns"])
    body = w.workload("ns", "bad", "q")
    body["spec"]["replicas"] = -3
    w.cache.put_object("Workload", "ns/bad", body)
    inputs = translate(w.cache.view(), {})
    assert "ns/bad" not in {x.key for x in inputs.workloads}
    assert "replicas" in inputs.invalid[("Workload", "ns/bad")]
    assert inputs.blocked["ns/bad"].rule == "InvalidSpec"


def test_namespace_not_listed_by_the_queue_is_blocked() -> None:
    w = World().queue("q", ["someone-else"])
    w.workload("ns", "job", "q")
    inputs = translate(w.cache.view(), {})
    assert inputs.blocked["ns/job"].rule == "NamespaceNotAllowed"


def test_namespace_selector_uses_the_namespace_labels() -> None:
    w = World()
    w.cache.put_object(
        "Queue",
        "q",
        {
            "apiVersion": "gpufleet.io/v1alpha1",
            "kind": "Queue",
            "metadata": {"name": "q", "resourceVersion": "5"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"team": "a"}},
                "resources": [{"acceleratorClass": "nvidia-h100", "deserved": 8}],
            },
        },
    )
    w.workload("ns", "job", "q")
    assert "ns/job" in translate(w.cache.view(), {}).blocked
    assert "ns/job" not in translate(w.cache.view(), {"ns": {"team": "a"}}).blocked


def test_unknown_queue_is_explained() -> None:
    w = World()
    w.workload("ns", "job", "nope")
    assert translate(w.cache.view(), {}).blocked["ns/job"].rule == "QueueNotFound"


def test_pods_gpufleet_does_not_account_for_reduce_node_capacity() -> None:
    w = World().queue("q", ["ns"])
    w.foreign_pod(HUB, "other", "training", "fra-0", gpus=6)
    w.placed("ns", "job", "q", "fra", "h100", ["fra-1"])
    w.pod(HUB, "ns", "job", 0, "fra-1")
    nodes = {n.name: n for n in translate(w.cache.view(), {}).nodes}
    assert nodes[f"{HUB}|fra-0"].accelerators == 2
    # Our own placed pod is accounted through the placement, not subtracted twice.
    assert nodes[f"{HUB}|fra-1"].accelerators == 8


def test_site_is_connected_only_when_its_cluster_answers_and_is_synced() -> None:
    w = World()
    w.connect("ams", connected=False)
    sites = {s.name: s for s in translate(w.cache.view(), {}).sites}
    assert sites["fra"].connected
    assert not sites["ams"].connected


def test_running_placement_is_translated_with_cluster_qualified_nodes() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "ams", "h200", ["ams-0", "ams-1"])
    wl = next(x for x in translate(w.cache.view(), {}).workloads if x.key == "ns/job")
    assert wl.placement is not None
    assert wl.placement.nodes == ("ams|ams-0", "ams|ams-1")
