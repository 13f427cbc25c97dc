"""Bad input is refused with an error naming the object, the field and the rule."""

from __future__ import annotations

from typing import Any

import pytest

from gpufleet.core import (
    ModelError,
    Node,
    Placement,
    Pool,
    Queue,
    Residency,
    Site,
    Snapshot,
    Workload,
)


def workload(**kw: Any) -> Workload:
    base: dict[str, Any] = {
        "key": "ns/w",
        "queue": "q",
        "replicas": 2,
        "min_replicas": 2,
        "accelerators_per_replica": 8,
        "accelerator_classes": ("nvidia-h100",),
    }
    base.update(kw)
    return Workload(**base)


@pytest.mark.parametrize(
    ("build", "field", "rule"),
    [
        (lambda: workload(replicas=0), "replicas", ">= 1"),
        (lambda: workload(min_replicas=3), "min_replicas", "between 1 and replicas"),
        (lambda: workload(min_replicas=0), "min_replicas", "between 1 and replicas"),
        (lambda: workload(accelerators_per_replica=0), "accelerators_per_replica", ">= 1"),
        (lambda: workload(accelerator_classes=()), "accelerator_classes", "at least one"),
        (lambda: workload(cpu_millis_per_replica=-1), "cpu_millis_per_replica", ">= 0"),
        (
            lambda: workload(placement=Placement("s", "p", ("n1",))),
            "placement.nodes",
            "one node per replica",
        ),
        (lambda: Node("n", "p", -1, 0, 0, 0), "accelerators", ">= 0"),
        (lambda: Pool("p", "s", "c", watts_per_accelerator=-5), "watts_per_accelerator", ">= 0"),
        (lambda: Pool("p", "s", "c", topology_keys=("rack", "rack")), "topology_keys", "repeat"),
        (lambda: Site("s", "DE", power_budget_watts=float("nan")), "power_budget_watts", "finite"),
        (lambda: Site("s", ""), "jurisdiction", "not be empty"),
        (
            lambda: Queue("q", deserved={"c": 16}, limit={"c": 8}),
            "deserved[c]",
            "<= limit[c]",
        ),
        (lambda: Queue("q", over_quota_weight={"c": -1.0}), "over_quota_weight[c]", ">= 0"),
        (lambda: Queue("q", parent="q"), "parent", "itself"),
    ],
)
def test_invalid_objects_name_field_and_rule(build: Any, field: str, rule: str) -> None:
    with pytest.raises(ModelError) as err:
        build()
    assert err.value.field == field
    assert rule in str(err.value)
    assert field in str(err.value)


SITE = Site("muc", "DE", ("EU",))
POOL = Pool("muc-h100", "muc", "nvidia-h100", topology_keys=("rack",))
NODE = Node("n0", "muc-h100", 8, 64_000, 2**36, 110, ("r0",))
QUEUE = Queue("q")


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"pools": [Pool("p", "nowhere", "c")]}, "site", "unknown site"),
        ({"nodes": [Node("n", "nopool", 8, 1, 1, 1)]}, "pool", "unknown pool"),
        ({"nodes": [Node("n", "muc-h100", 8, 1, 1, 1)]}, "topology", "one value per topology key"),
        ({"nodes": [NODE, NODE]}, "name", "unique"),
        ({"workloads": [workload(), workload()]}, "name", "unique"),
        ({"queues": [Queue("a", parent="b"), Queue("b", parent="a")]}, "parent", "cycle"),
        ({"queues": [Queue("a", parent="zz")]}, "parent", "unknown queue"),
        ({"workloads": [workload(queue="nope")]}, "queue", "unknown queue"),
        (
            {
                "queues": [Queue("dept"), Queue("q", parent="dept")],
                "workloads": [workload(queue="dept")],
            },
            "queue",
            "leaf queue",
        ),
        (
            {"workloads": [workload(placement=Placement("par", "muc-h100", ("n0", "n0")))]},
            "placement.site",
            "must be the site of pool",
        ),
        (
            {"workloads": [workload(placement=Placement("muc", "gone", ("n0", "n0")))]},
            "placement.pool",
            "unknown pool",
        ),
    ],
)
def test_snapshot_refuses_inconsistent_input(kwargs: dict[str, Any], field: str, rule: str) -> None:
    args: dict[str, Any] = {
        "sites": [SITE],
        "pools": [POOL],
        "nodes": [NODE],
        "queues": [QUEUE],
        "workloads": [],
        "now": 0.0,
    }
    args.update(kwargs)
    with pytest.raises(ModelError) as err:
        Snapshot.build(**args)
    assert err.value.field == field
    assert rule in str(err.value)


def test_snapshot_subtracts_running_usage_and_ignores_vanished_nodes() -> None:
    running = workload(
        replicas=3,
        min_replicas=3,
        accelerators_per_replica=2,
        cpu_millis_per_replica=1000,
        placement=Placement("muc", "muc-h100", ("n0", "n0", "gone"), 0.0),
    )
    snap = Snapshot.build([SITE], [POOL], [NODE], [QUEUE], [running], now=1.0)
    assert snap.acc_free.tolist() == [4]
    assert snap.cpu_free.tolist() == [62_000]
    assert snap.pods_free.tolist() == [108]
    # The queue still holds what the workload asked for, vanished node included.
    assert snap.allocated[snap.queue_index["q"]][snap.class_index["nvidia-h100"]] == 6


def test_residency_location_rule() -> None:
    de = Site("muc", "DE", ("EU",))
    us = Site("iad", "US", ("NA",))
    assert Residency().allows_location(us)
    eu = Residency(regions=frozenset({"EU"}))
    assert eu.allows_location(de)
    assert not eu.allows_location(us)
    either = Residency(jurisdictions=frozenset({"US"}), regions=frozenset({"EU"}))
    assert either.allows_location(de)
    assert either.allows_location(us)
    certs = Residency(certifications=frozenset({"c5"}))
    assert certs.missing_certifications(de) == {"c5"}


def test_the_first_duplicate_workload_in_key_order_is_named() -> None:
    twice = [workload(key=k) for k in ("ns/b", "ns/a", "ns/c", "ns/b", "ns/a")]
    with pytest.raises(ModelError) as err:
        Snapshot.build([SITE], [POOL], [NODE], [QUEUE], twice, 0.0)
    assert err.value.name == "ns/a"
