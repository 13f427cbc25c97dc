"""Preemption hand-off, kubelet refusals and whole-pod accounting (issue #12, items 2-3)."""

from __future__ import annotations

import time
from dataclasses import replace

from gpufleet.api.v1alpha1 import Queue, Workload
from gpufleet.control.handoff import grace_seconds
from gpufleet.control.lifecycle import plan_lifecycle
from gpufleet.observed.cache import HUB
from gpufleet.observed.podrequests import pod_requests
from gpufleet.observed.records import PodRecord
from gpufleet.observed.translate import core_node_name, translate

from .builders import World

NOW = time.time()


def _queue(name: str, parent: str | None = None, grace: int | None = None) -> Queue:
    spec: dict[str, object] = {"namespaces": ["ns"]}
    if parent:
        spec["parent"] = parent
    if grace is not None:
        spec["preemption"] = {"gracePeriodSeconds": grace}
    return Queue.model_validate({"metadata": {"name": name}, "spec": spec})


def _workload(queue: str, grace: int | None = None) -> Workload:
    spec: dict[str, object] = {
        "queue": queue,
        "acceleratorClasses": ["nvidia-h100"],
        "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
    }
    if grace is not None:
        spec["preemptionGracePeriodSeconds"] = grace
    return Workload.model_validate({"metadata": {"name": "w", "namespace": "ns"}, "spec": spec})


def test_grace_period_is_the_workloads_else_inherited_down_the_queue_tree_else_30() -> None:
    queues = {
        "org": _queue("org", grace=120),
        "team": _queue("team", parent="org"),
        "quick": _queue("quick", parent="org", grace=5),
        "plain": _queue("plain"),
    }
    assert grace_seconds(_workload("team"), queues) == 120  # from the grandparent
    assert grace_seconds(_workload("quick"), queues) == 5  # the nearest wins
    assert grace_seconds(_workload("team", grace=0), queues) == 0  # the workload's own
    assert grace_seconds(_workload("plain"), queues) == 30


def _refused(w: World, node: str, reason: str) -> None:
    pod = w.pod(HUB, "ns", "job", 1, node, phase="Failed")
    w.cache.pod_event(HUB, replace(pod, reason=reason, message="Node didn't have enough"), pod.key)


def test_a_pod_the_kubelet_refuses_requeues_the_workload_instead_of_failing_it() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0", "fra-1"], phase="Admitted")
    w.pod(HUB, "ns", "job", 0, "fra-0")
    _refused(w, "fra-1", "OutOfnvidia.com/gpu")
    view = w.cache.view()
    p = plan_lifecycle(view, translate(view, {}), NOW, "gpufleet")
    [change] = p.changes
    assert (change.phase, change.reason, change.clear_placement) == (
        "Pending",
        "PlacementRefused",
        True,
    )
    assert "node fra-1" in change.message
    assert "OutOfnvidia.com/gpu" in change.message
    assert [d.pods for d in p.deletes] == [("ns/job-e1-0",)]  # the rest of the gang stops
    assert [(r.node, r.resource) for r in p.refusals] == [("fra-1", "nvidia.com/gpu")]


def test_a_pod_that_ran_and_failed_still_fails_the_workload() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0", "fra-1"])
    w.pod(HUB, "ns", "job", 0, "fra-0")
    pod = w.pod(HUB, "ns", "job", 1, "fra-1", phase="Failed")
    w.cache.pod_event(HUB, replace(pod, reason="Evicted", ran=True), pod.key)
    view = w.cache.view()
    p = plan_lifecycle(view, translate(view, {}), NOW, "gpufleet")
    assert [(c.phase, c.reason) for c in p.changes] == [("Failed", "PodFailed")]


def test_the_refusing_node_counts_its_refused_resource_as_used_up_for_a_while() -> None:
    # The view is taken at the wall clock: measure from now, not from the module's import.
    now = time.time()
    w = World().queue("q", ["ns"])
    w.cache.note_refusal(HUB, "fra-1", "nvidia.com/gpu", now + 600)
    w.cache.note_refusal(HUB, "fra-2", None, now + 600)  # a taint, an affinity: keep off
    w.cache.note_refusal(HUB, "fra-3", "nvidia.com/gpu", now - 1)  # expired
    nodes = {n.name: n for n in translate(w.cache.view(), {}).nodes}
    assert nodes[core_node_name(HUB, "fra-0")].accelerators == 8
    assert nodes[core_node_name(HUB, "fra-1")].accelerators == 0
    assert not nodes[core_node_name(HUB, "fra-2")].ready
    assert nodes[core_node_name(HUB, "fra-3")].accelerators == 8


def test_a_terminating_victim_holds_the_preemptors_pods_a_foreign_pod_does_not() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0", "fra-1"], phase="Admitted", gpus=4)
    w.foreign_pod(HUB, "other", "web", "fra-0", 4)  # stays; the core counted it
    view = w.cache.view()
    assert len(plan_lifecycle(view, translate(view, {}), NOW, "gpufleet").creates) == 1
    victim = w.pod(HUB, "ns", "old", 0, "fra-1")  # a victim: no placement keeps it
    view = w.cache.view()
    p = plan_lifecycle(view, translate(view, {}), NOW, "gpufleet")
    assert p.creates == []
    [held] = p.changes
    assert (held.reason, held.condition) == ("WaitingForNodes", ("PodsHeld", "True"))
    assert held.message == "waiting for the pods of ns/old (old-e1-0 on fra-1) to terminate"
    w.cache.pod_event(HUB, replace(victim, deleting=True), victim.key)
    view = w.cache.view()
    assert plan_lifecycle(view, translate(view, {}), NOW, "gpufleet").creates == []
    # Stopped by its kubelet, but its object is not gone yet: still waited for.
    w.cache.pod_event(HUB, replace(victim, deleting=True, phase="Succeeded"), victim.key)
    view = w.cache.view()
    assert plan_lifecycle(view, translate(view, {}), NOW, "gpufleet").creates == []
    w.cache.pod_event(HUB, None, victim.key)
    view = w.cache.view()
    assert [
        c.missing for c in plan_lifecycle(view, translate(view, {}), NOW, "gpufleet").creates
    ] == [(0, 1)]


def _res(cpu: str = "0", mem: str = "0", gpu: int = 0) -> dict[str, object]:
    req: dict[str, str] = {"cpu": cpu, "memory": mem}
    lim = {"nvidia.com/gpu": str(gpu)} if gpu else {}
    return {"requests": req, "limits": lim}


def test_a_pod_is_counted_as_kube_scheduler_counts_it() -> None:
    spec = {
        "containers": [
            {"name": "a", "resources": _res("1", "1Gi", 2)},
            {"name": "b", "resources": _res("500m", "1Gi", 1)},
        ],
        "initContainers": [
            # Runs alone, before: the largest init step counts if it is above the sum.
            {"name": "warm", "resources": _res("4", "512Mi", 4)},
            # A sidecar runs beside everything started after it, and beside the containers.
            {"name": "proxy", "restartPolicy": "Always", "resources": _res("250m", "256Mi")},
            {"name": "late", "resources": _res("1", "3Gi")},
        ],
        "overhead": {"cpu": "100m", "memory": "64Mi"},
    }
    r = pod_requests(spec)
    # cpu: max(1 + 0.5 + 0.25, 4, 1 + 0.25) + 0.1; memory: max(2Gi + 256Mi, 512Mi,
    # 3Gi + 256Mi) + 64Mi; GPUs: max(3, 4).
    assert r.cpu_millis == 4100
    assert r.memory_bytes == (3 * 1024 + 256 + 64) * 2**20
    assert dict(r.accelerators) == {"nvidia.com/gpu": 4}


def test_pods_of_other_schedulers_are_counted_whole_on_their_nodes() -> None:
    pod = PodRecord.from_dict(
        {
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {
                "nodeName": "fra-0",
                "containers": [{"name": "a", "resources": _res(gpu=2)}],
                "initContainers": [{"name": "i", "resources": _res(gpu=6)}],
            },
            "status": {"phase": "Running"},
        }
    )
    assert pod.accelerators == {"nvidia.com/gpu": 6}
    w = World().queue("q", ["ns"])
    w.cache.pod_event(HUB, pod, pod.key)
    nodes = {n.name: n for n in translate(w.cache.view(), {}).nodes}
    assert nodes[core_node_name(HUB, "fra-0")].accelerators == 2


def test_a_template_that_asks_for_accelerators_is_refused_naming_the_field() -> None:
    w = World().queue("q", ["ns"])
    w.workload(
        "ns",
        "sneaky",
        "q",
        template={
            "spec": {
                "containers": [{"name": "c", "image": "x"}],
                "initContainers": [
                    {"name": "i", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "2"}}}
                ],
            }
        },
    )
    inputs = translate(w.cache.view(), {})
    verdict = inputs.blocked["ns/sneaky"]
    assert verdict.rule == "InvalidSpec"
    assert verdict.message.startswith(
        "spec.template.spec.initContainers[0].resources.limits['nvidia.com/gpu']:"
    )
    assert "ns/sneaky" not in {x.key for x in inputs.workloads}


def test_the_core_places_the_whole_pod_cpu_and_memory_included() -> None:
    w = World().queue("q", ["ns"])
    w.workload(
        "ns",
        "big",
        "q",
        cpu="96",
        memory="1Ti",
        template={
            "spec": {
                "containers": [{"name": "c", "image": "x"}],
                "initContainers": [
                    {"name": "s", "restartPolicy": "Always", "resources": _res("2", "1Gi")}
                ],
            }
        },
    )
    [wl] = translate(w.cache.view(), {}).workloads
    assert wl.cpu_millis_per_replica == 98_000
    assert wl.memory_bytes_per_replica == 2**40 + 2**30
