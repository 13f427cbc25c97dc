"""Hostile Workloads on the dev fleet with the operator running: refused, and nothing created.

Every corpus template (and generated variants) is submitted as a Workload; each must end
Pending with ``InvalidSpec`` naming its field, and listing every cluster's pods must show
none of them anywhere. Then defence in depth: with the operator's own template check
switched off, the member's Pod Security admission still refuses the privileged pod, because
of the label gpufleet put on the namespace it created there.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.operator_harness import Fleet, OperatorProcess, queue_obj, wait_for
from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.control.podguard import SKIP_ENV
from security.corpus import IMAGE, benign, load, workload

RESOURCES = [
    {"acceleratorClass": "nvidia-h100", "deserved": 64},
    {"acceleratorClass": "nvidia-h200", "deserved": 32},
    {"acceleratorClass": "nvidia-b200", "deserved": 32},
]
MEMBER_SITE = "localzone-ams"  # a member cluster (NL): residency NL sends work there


def _condition(wl: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conds = (wl.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == type_), None)


def _generated(n: int, seed: int = 13) -> list[tuple[str, dict[str, Any], str]]:
    """Hostile variants: one bad field at a random container of a benign multi-container pod."""
    rng = random.Random(seed)
    bad = [
        ({"securityContext": {"privileged": True}}, "securityContext.privileged"),
        ({"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}, "securityContext.capabilities.add[0]"),
        ({"resources": {"limits": {"nvidia.com/gpu": "8"}}}, "resources.limits['nvidia.com/gpu']"),
        ({"ports": [{"containerPort": 22, "hostPort": 22}]}, "ports[0].hostPort"),
    ]  # fmt: skip
    out = []
    for i in range(n):
        kinds = {"initContainers": rng.randint(0, 2), "containers": rng.randint(1, 3)}
        spec = {
            k: [{"name": f"{k[:4].lower()}{j}", "image": IMAGE} for j in range(m)]
            for k, m in kinds.items()
        }
        kind = rng.choice([k for k, m in kinds.items() if m])
        index = rng.randrange(kinds[kind])
        patch, rel = rng.choice(bad)
        spec[kind][index].update(copy.deepcopy(patch))
        out.append((f"gen-{i}", {"spec": spec}, f"spec.template.spec.{kind}[{index}].{rel}"))
    return out


def _all_pods(fleet: Fleet, namespace: str) -> dict[str, list[str]]:
    """Every pod of `namespace` in every cluster, whoever created it."""
    found = {}
    for cluster, api in fleet.clients.items():
        pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
        found[cluster] = [p.metadata.name for p in pods]
    return found


@pytest.fixture
def queue(fleet: Fleet, team: str) -> Iterator[str]:
    name = f"q-{team}"
    fleet.apply(queue_obj(name, [team], RESOURCES))
    yield name
    fleet.custom.delete_cluster_custom_object(GROUP, VERSION, "queues", name)


def test_every_hostile_template_is_refused_with_its_field_and_nothing_reaches_any_cluster(
    fleet: Fleet, team: str, queue: str
) -> None:
    cases = [(c.id, c.template, c.path, c.name, c.level) for c in load()]
    cases += [(i, t, p, i, "baseline") for i, t, p in _generated(20)]
    restricted = f"{queue}-restricted"
    fleet.apply(queue_obj(restricted, [team], RESOURCES, podSecurity="restricted"))
    submitted: dict[str, str] = {}
    refused_by_hub: dict[str, str] = {}
    for case_id, template, path, name, level in cases:
        name = name if name != "hostile" else f"h-{case_id}"
        body = workload(team, name, restricted if level == "restricted" else queue, template)
        try:
            fleet.custom.create_namespaced_custom_object(GROUP, VERSION, team, "workloads", body)
            submitted[name] = path
        except ApiException as exc:
            # The hub's CRD schema refused it first: that is a refusal naming the field too.
            refused_by_hub[case_id] = f"{exc.status} " + json.loads(exc.body or "{}").get(
                "message", ""
            )
    assert all(m.startswith("422 ") for m in refused_by_hub.values()), refused_by_hub
    # A benign workload beside them: the operator is dispatching, so "no pods" means refused.
    control = workload(team, "benign", queue, benign())
    fleet.custom.create_namespaced_custom_object(GROUP, VERSION, team, "workloads", control)

    def all_refused() -> dict[str, str] | None:
        verdicts = {}
        for wl in fleet.workloads(team):
            name = wl["metadata"]["name"]
            if name in submitted:
                cond = _condition(wl, "Admitted")
                if cond is None or cond.get("reason") != "InvalidSpec":
                    return None
                verdicts[name] = cond["message"]
        return verdicts if len(verdicts) == len(submitted) else None

    verdicts = wait_for("every hostile workload to be refused", all_refused, timeout=120)
    for name, path in submitted.items():
        wl = fleet.workload(team, name)
        assert (wl.get("status") or {}).get("phase") == "Pending", name
        assert path in json.dumps(wl["status"]["verdicts"]), (name, path, verdicts[name])
    fleet.wait_phase(team, "benign", {"Admitted", "Running"}, timeout=90)

    pods = _all_pods(fleet, team)
    hostile_pods = {
        c: [p for p in names if not p.startswith("benign-")] for c, names in pods.items()
    }
    assert hostile_pods == {c: [] for c in fleet.clients}, hostile_pods
    assert sum(len(v) for v in pods.values()) == 1  # the benign one, exactly once
    print(
        f"\nprobes tried: {len(cases)}; refused by the operator: {len(submitted)};"
        f" refused by the hub's schema: {len(refused_by_hub)} {sorted(refused_by_hub)};"
        f" objects created in any cluster: {sum(len(v) for v in hostile_pods.values())}"
    )
    fleet.custom.delete_cluster_custom_object(GROUP, VERSION, "queues", restricted)


def test_an_existing_looser_member_namespace_is_not_relabelled_and_dispatch_is_refused(
    fleet: Fleet, team: str, queue: str
) -> None:
    member = client.CoreV1Api(fleet.clients[MEMBER_SITE])
    member.create_namespace({"metadata": {"name": team}})  # no Pod Security label: privileged
    try:
        wl = workload(team, "to-ams", queue, benign())
        wl["spec"]["residency"] = {"jurisdictions": ["NL"]}
        fleet.custom.create_namespaced_custom_object(GROUP, VERSION, team, "workloads", wl)

        def refused() -> dict[str, Any] | None:
            w = fleet.workload(team, "to-ams")
            rules = [v.get("rule") for v in (w.get("status") or {}).get("verdicts") or []]
            return w if "NamespacePodSecurity" in rules else None

        w = wait_for("the dispatch to be refused", refused, timeout=60)
        verdict = next(v for v in w["status"]["verdicts"] if v["rule"] == "NamespacePodSecurity")
        assert (
            f"kubectl label namespace {team} pod-security.kubernetes.io/enforce=baseline"
            in (verdict["message"])
        )
        assert w["status"]["phase"] == "Pending"

        def event() -> list[Any]:
            events = client.CoreV1Api(fleet.api).list_namespaced_event(
                team, field_selector="reason=NamespacePodSecurity"
            )
            return list(events.items)

        assert "enforce=baseline" in wait_for("a NamespacePodSecurity Event", event)[0].message
        labels = member.read_namespace(team).metadata.labels or {}
        assert "pod-security.kubernetes.io/enforce" not in labels  # not relabelled
        assert _all_pods(fleet, team)[MEMBER_SITE] == []

        # Once the member's admin labels it, the same workload is dispatched there.
        member.patch_namespace(
            team, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
        )
        fleet.wait_phase(team, "to-ams", {"Admitted", "Running"}, timeout=60)
        wait_for("its pod at the member", lambda: _all_pods(fleet, team)[MEMBER_SITE])
    finally:
        fleet.delete_all_workloads(team)
        member.delete_namespace(team)


@pytest.fixture
def unchecked_operator(
    operator: OperatorProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OperatorProcess]:
    """The session's operator restarted with its template check off; restored afterwards."""
    operator.stop()
    monkeypatch.setenv(SKIP_ENV, "1")
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()
        monkeypatch.delenv(SKIP_ENV)
        operator.start()


def test_with_the_operators_check_off_the_member_still_refuses_a_privileged_pod(
    fleet: Fleet, team: str, queue: str, unchecked_operator: OperatorProcess
) -> None:
    member = client.CoreV1Api(fleet.clients[MEMBER_SITE])
    template = {
        "spec": {
            "containers": [
                {"name": "main", "image": IMAGE, "securityContext": {"privileged": True}}
            ]
        }
    }
    wl = workload(team, "privileged", queue, template)
    wl["spec"]["residency"] = {"jurisdictions": ["NL"]}
    fleet.custom.create_namespaced_custom_object(GROUP, VERSION, team, "workloads", wl)
    # The check is off, so it is admitted and gpufleet tries to create the pod at the member.
    fleet.wait_phase(team, "privileged", {"Admitted"}, timeout=60)

    def created_namespace() -> dict[str, str] | None:
        try:
            return member.read_namespace(team).metadata.labels
        except ApiException:
            return None

    labels = wait_for("gpufleet to create the member namespace", created_namespace)
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.37"
    log_dir = unchecked_operator.log_dir

    def refusal_logged() -> str | None:
        text = (log_dir / f"operator-{unchecked_operator.starts}.log").read_text(errors="replace")
        # The 403's body is logged as JSON, so its quotes are escaped.
        refused = "violates PodSecurity" in text and "baseline:v1.37" in text
        return text if refused else None

    text = wait_for("the member's refusal in the operator's log", refusal_logged, timeout=60)
    assert "must not set securityContext.privileged=true" in text
    assert _all_pods(fleet, team)[MEMBER_SITE] == []
    pods = fleet.workload_pods(team, "privileged")
    assert pods == {c: [] for c in fleet.clients}
    fleet.delete_all_workloads(team)
    member.delete_namespace(team)
