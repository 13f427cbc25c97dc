"""The operator's gate: queue levels down the tree, workloads set aside, pods hardened."""

from __future__ import annotations

from typing import Any

from control.builders import World
from gpufleet import core
from gpufleet.api.v1alpha1 import Queue
from gpufleet.control.podguard import PodGuard, namespace_refusal
from gpufleet.observed.cache import HUB
from gpufleet.observed.podpolicy import VerdictCache, queue_policies, screen
from gpufleet.observed.translate import translate
from gpufleet.sites.dispatch import plan_pods


def _queue(name: str, parent: str | None = None, **spec: Any) -> Queue:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {"namespaces": ["ns"], **spec}}
    if parent:
        body["spec"]["parent"] = parent
    return Queue.model_validate(body)


def test_levels_are_inherited_and_a_looser_child_is_refused_and_held_to_its_parent() -> None:
    queues = {
        q.metadata.name or "": q
        for q in (
            _queue("root", podSecurity="restricted"),
            _queue("team", "root"),
            _queue("lax", "root", podSecurity="privileged"),
            _queue("alone"),
            _queue("open", podSecurity="privileged"),
            _queue("strict-kid", "open", podSecurity="restricted"),
        )
    }
    policies, refused = queue_policies(queues)
    assert {n: p.level for n, p in policies.items()} == {
        "root": "restricted",
        "team": "restricted",
        "lax": "restricted",
        "alone": "baseline",
        "open": "privileged",
        "strict-kid": "restricted",
    }
    assert set(refused) == {"lax"}
    assert "looser than restricted" in refused["lax"]


def test_a_parent_cycle_does_not_hang() -> None:
    queues = {"a": _queue("a", "b"), "b": _queue("b", "a", podSecurity="restricted")}
    policies, _ = queue_policies(queues)
    assert policies["a"].level == "restricted"


def _world_with(template: dict[str, Any], **queue: Any) -> tuple[World, Any]:
    w = World().queue("q", ["ns"], **queue)
    w.workload("ns", "job", "q", template=template)
    return w, translate(w.cache.view(), {})


PRIVILEGED = {
    "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]}
}


def test_screen_sets_a_refused_workload_aside_with_invalid_spec_and_the_field() -> None:
    _, inputs = _world_with(PRIVILEGED)
    assert "ns/job" in {w.key for w in inputs.workloads}
    screen(inputs, VerdictCache())
    assert "ns/job" not in {w.key for w in inputs.workloads}
    verdict = inputs.blocked["ns/job"]
    assert verdict.rule == "InvalidSpec"
    assert "spec.template.spec.containers[0].securityContext.privileged" in verdict.message
    assert "Pod Security privileged" in verdict.message or "privileged" in verdict.message


def test_the_same_template_at_a_privileged_queue_is_admissible() -> None:
    _, inputs = _world_with(PRIVILEGED, podSecurity="privileged")
    screen(inputs, VerdictCache())
    assert "ns/job" in {w.key for w in inputs.workloads}


def test_the_switch_for_tests_turns_the_template_check_off() -> None:
    _, inputs = _world_with(PRIVILEGED)
    screen(inputs, VerdictCache(), enabled=False)
    assert "ns/job" in {w.key for w in inputs.workloads}


def test_verdicts_are_cached_per_workload_generation_and_policy() -> None:
    w = World().queue("q", ["ns"])
    for i in range(20):
        w.workload("ns", f"job-{i}", "q", template=PRIVILEGED)
    cache = VerdictCache()
    screen(translate(w.cache.view(), {}), cache)
    assert cache.misses == 20
    screen(translate(w.cache.view(), {}), cache)
    assert cache.hits == 20
    assert cache.misses == 20
    # A new generation (the spec changed) is checked again, and its new verdict holds.
    body = w.workload(
        "ns", "job-0", "q", template={"spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    body["metadata"]["generation"] = 2
    inputs = translate(w.cache.view(), {})
    screen(inputs, cache)
    assert cache.misses == 21
    assert "ns/job-0" in {x.key for x in inputs.workloads}


def test_harden_switches_the_token_off_and_labels_namespaces_it_creates() -> None:
    w, inputs = _world_with({"spec": {"containers": [{"name": "c", "image": "x"}]}})
    guard = PodGuard(checks=True)
    guard.screen(inputs)
    body = w.cache.view().workloads["ns/job"]
    plans = plan_pods(
        workload=body,
        site="ams",
        nodes=["ams-0"],
        epoch=1,
        resource_name="nvidia.com/gpu",
        origin="o",
    )
    (plan,) = guard.harden(body, plans)
    assert plan.manifest["spec"]["automountServiceAccountToken"] is False
    assert plan.namespace_labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert plan.namespace_labels["pod-security.kubernetes.io/enforce-version"] == "v1.37"


def test_harden_refuses_a_placed_workload_whose_template_is_now_refused() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0"], template=PRIVILEGED)
    guard = PodGuard(checks=True)
    guard.screen(translate(w.cache.view(), {}))
    body = w.cache.view().workloads["ns/job"]
    plans = plan_pods(
        workload=body,
        site="fra",
        nodes=["fra-0"],
        epoch=1,
        resource_name="nvidia.com/gpu",
        origin="o",
    )
    assert guard.harden(body, plans) == []


def _ns_world(labels: dict[str, str] | None, synced: bool = True) -> World:
    w = World().queue("q", ["ns"])
    state = w.cache.clusters["ams"]
    # The world's clusters come fully synced; take the namespace listing away when asked.
    if not synced:
        state.synced.discard("namespaces")
    if labels is not None:
        w.cache.namespace_event("ams", labels, "ns")
    return w


def test_namespace_rule() -> None:
    baseline = _queue("q")
    from gpufleet.api.podtemplate import TemplatePolicy

    policy = TemplatePolicy(level="restricted")
    assert namespace_refusal(_ns_world(None).cache.view(), "ams", "ns", policy) is None
    unlabelled = namespace_refusal(_ns_world({}).cache.view(), "ams", "ns", policy)
    assert unlabelled is not None
    assert "enforce=restricted" in unlabelled
    weaker = {"pod-security.kubernetes.io/enforce": "baseline"}
    assert namespace_refusal(_ns_world(weaker).cache.view(), "ams", "ns", policy) is not None
    assert namespace_refusal(_ns_world(weaker).cache.view(), "ams", "ns", TemplatePolicy()) is None
    not_listed = namespace_refusal(_ns_world(None, synced=False).cache.view(), "ams", "ns", policy)
    assert not_listed is not None
    assert "not listed" in not_listed
    assert baseline.spec.pod_security is None


def test_an_admission_into_a_too_loose_namespace_is_not_recorded_and_says_why() -> None:
    w = _ns_world({"team": "x"})
    w.workload("ns", "job", "q")
    view = w.cache.view()
    inputs = translate(view, {})
    guard = PodGuard(checks=True)
    guard.screen(inputs)
    result = core.CycleResult(
        admissions=[
            core.Admission(workload="ns/job", site="ams", pool="h200", nodes=("ams|ams-0",))
        ],
        evictions=[],
        verdicts={},
        fair_shares={},
        queue_order=[],
        positions={},
    )
    writes: list[dict[str, Any]] = []
    events: list[tuple[str, str, str]] = []

    def write(body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        writes.append(patch)
        return body

    refused = guard.refuse(
        view, inputs, result, write, lambda b, t, r, m: events.append((t, r, m)), 0.0
    )
    assert refused == {"ns/job"}
    (patch,) = writes
    assert patch["verdicts"][0]["rule"] == "NamespacePodSecurity"
    assert (
        "kubectl label namespace ns pod-security.kubernetes.io/enforce=baseline"
        in patch["verdicts"][0]["message"]
    )
    assert events
    assert events[0][:2] == ("Warning", "NamespacePodSecurity")
    assert HUB in view.clusters
