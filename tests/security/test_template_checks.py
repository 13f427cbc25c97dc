"""Every hostile template is refused before admission with its field named; benign ones pass."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpufleet.api import podsecurity
from gpufleet.api.podtemplate import TemplatePolicy, check_workload

from .corpus import IMAGE, RESTRICTED_CONTEXT, Case, benign, load

CASES = load()


def test_the_corpus_is_big_enough_and_covers_every_family() -> None:
    assert len(CASES) >= 50
    ids = " ".join(c.id for c in CASES)
    for family in (
        "privileged", "host-pid", "host-network", "host-port", "hostpath", "cap-", "seccomp",
        "apparmor", "proc-mount", "sysctl", "sa-", "gpu-in-sidecar", "node-name", "label-",
        "name-64", "huge",
    ):  # fmt: skip
        assert family in ids, family
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_hostile_template_is_refused_with_its_field_named(case: Case) -> None:
    findings = check_workload(case.name, case.template, case.policy)
    assert findings, f"{case.id} was allowed"
    assert case.path in {f.path for f in findings}, [str(f) for f in findings]


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_a_careful_template_is_allowed(level: str) -> None:
    assert check_workload("train-llm", benign(level), TemplatePolicy(level=level)) == []  # type: ignore[arg-type]


def test_privileged_queues_allow_what_pod_security_forbids_but_not_gpufleets_rules() -> None:
    privileged = TemplatePolicy(level="privileged")
    by_id = {c.id: c for c in CASES}
    assert check_workload("x", by_id["privileged"].template, privileged) == []
    assert check_workload("x", by_id["the-issue"].template, privileged) == []
    node_name = check_workload("x", by_id["node-name"].template, privileged)
    assert [f.rule for f in node_name] == ["SteeringField"]


def test_service_accounts_and_tokens_follow_the_queue() -> None:
    template = benign()
    template["spec"]["serviceAccountName"] = "trainer"
    template["spec"]["automountServiceAccountToken"] = True
    refused = check_workload("x", template, TemplatePolicy())
    assert {f.rule for f in refused} == {"ServiceAccountNotAllowed", "ServiceAccountToken"}
    allowed = TemplatePolicy(service_accounts=frozenset({"trainer"}), automount_token=True)
    assert check_workload("x", template, allowed) == []


def test_a_pool_resource_name_counts_as_an_accelerator() -> None:
    template = benign()
    template["spec"]["containers"][0]["resources"]["limits"] = {"example.com/npu": "4"}
    assert check_workload("x", template, TemplatePolicy()) == []
    policy = TemplatePolicy(accelerator_resources=frozenset({"example.com/npu"}))
    (finding,) = check_workload("x", template, policy)
    assert finding.path == "spec.template.spec.containers[0].resources.limits['example.com/npu']"


# -- generated: a benign template with one hostile change at a random place -------------------

# (change, the path it breaks relative to the container or pod, the level it needs)
ContainerChange = tuple[str, dict[str, Any], str]
CONTAINER_CHANGES: list[ContainerChange] = [
    ("privileged", {"securityContext": {"privileged": True}}, "securityContext.privileged"),
    ("cap", {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}, "securityContext.capabilities.add[0]"),
    ("procmount", {"securityContext": {"procMount": "Unmasked"}}, "securityContext.procMount"),
    ("seccomp", {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, "securityContext.seccompProfile.type"),
    ("selinux", {"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}, "securityContext.seLinuxOptions.type"),
    ("hostport", {"ports": [{"containerPort": 80, "hostPort": 8080}]}, "ports[0].hostPort"),
    ("gpu", {"resources": {"limits": {"nvidia.com/gpu": "1"}}}, "resources.limits['nvidia.com/gpu']"),
    ("amd", {"resources": {"requests": {"amd.com/gpu": "2"}}}, "resources.requests['amd.com/gpu']"),
    ("probe", {"readinessProbe": {"tcpSocket": {"host": "10.1.1.1", "port": 1}}}, "readinessProbe.tcpSocket.host"),
]  # fmt: skip
POD_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("hostPID", {"hostPID": True}, "hostPID"),
    ("hostIPC", {"hostIPC": True}, "hostIPC"),
    ("hostNetwork", {"hostNetwork": True}, "hostNetwork"),
    ("nodeName", {"nodeName": "n1"}, "nodeName"),
    ("tolerations", {"tolerations": [{"operator": "Exists"}]}, "tolerations"),
    ("schedulerName", {"schedulerName": "s"}, "schedulerName"),
    ("priorityClassName", {"priorityClassName": "system-cluster-critical"}, "priorityClassName"),
    ("sysctl", {"securityContext": {"sysctls": [{"name": "kernel.sem", "value": "1"}]}}, "securityContext.sysctls[0].name"),
]  # fmt: skip


def _container(i: int) -> dict[str, Any]:
    return {"name": f"c{i}", "image": IMAGE}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    level=st.sampled_from(["baseline", "restricted"]),
    n_init=st.integers(0, 3),
    n_main=st.integers(1, 4),
    where=st.data(),
    change=st.sampled_from(CONTAINER_CHANGES),
)
def test_generated_container_changes_are_refused_at_the_container_changed(
    level: str, n_init: int, n_main: int, where: st.DataObject, change: ContainerChange
) -> None:
    spec: dict[str, Any] = {
        "initContainers": [_container(i) for i in range(n_init)],
        "containers": [_container(10 + i) for i in range(n_main)],
    }
    if level == "restricted":
        for c in spec["initContainers"] + spec["containers"]:
            c["securityContext"] = copy.deepcopy(RESTRICTED_CONTEXT)
    policy = TemplatePolicy(level=level)  # type: ignore[arg-type]
    assert check_workload("gen", {"spec": spec}, policy) == []
    kinds = ["containers"] + (["initContainers"] if n_init else [])
    kind = where.draw(st.sampled_from(kinds))
    index = where.draw(st.integers(0, len(spec[kind]) - 1))
    _, patch, rel = change
    target = spec[kind][index]
    for key, value in copy.deepcopy(patch).items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key].update(value)
        else:
            target[key] = value
    paths = {f.path for f in check_workload("gen", {"spec": spec}, policy)}
    assert f"spec.template.spec.{kind}[{index}].{rel}" in paths, paths


@settings(max_examples=200, deadline=None)
@given(change=st.sampled_from(POD_CHANGES), level=st.sampled_from(["baseline", "restricted"]))
def test_generated_pod_changes_are_refused_at_the_field(
    change: tuple[str, dict[str, Any], str], level: str
) -> None:
    template = benign(level)
    _, patch, rel = change
    template["spec"].update(copy.deepcopy(patch))
    paths = {f.path for f in check_workload("gen", template, TemplatePolicy(level=level))}  # type: ignore[arg-type]
    assert f"spec.template.spec.{rel}" in paths, paths


@settings(max_examples=200, deadline=None)
@given(name=st.text(st.sampled_from("abcxyz019-."), min_size=1, max_size=253))
def test_workload_names_refused_exactly_when_the_pod_label_could_not_hold_them(name: str) -> None:
    paths = {f.path for f in check_workload(name, benign(), TemplatePolicy())}
    label_ok = len(name) <= 63 and name[0].isalnum() and name[-1].isalnum()
    assert ("metadata.name" in paths) == (not label_ok)


def test_namespace_labels_and_levels() -> None:
    labels = podsecurity.namespace_labels("restricted")
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit-version"] == podsecurity.PSS_VERSION
    assert podsecurity.enforced_level(labels) == "restricted"
    assert podsecurity.enforced_level({}) == "privileged"
    assert (
        podsecurity.enforced_level({"pod-security.kubernetes.io/enforce": "bogus"}) == "privileged"
    )
    assert podsecurity.looser_than("baseline", "restricted")
    assert not podsecurity.looser_than("restricted", "baseline")


def test_a_check_costs_microseconds(record_property: Any) -> None:
    """The figure in docs/security.md: one uncached check of a realistic template."""
    template = benign("restricted")
    template["spec"]["containers"] += [
        {**copy.deepcopy(template["spec"]["containers"][0]), "name": f"side{i}"} for i in range(3)
    ]
    policy = TemplatePolicy(level="restricted")
    assert check_workload("train", template, policy) == []
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        check_workload("train", template, policy)
    per_check_us = (time.perf_counter() - start) / n * 1e6
    record_property("per_check_us", per_check_us)
    print(f"template check: {per_check_us:.1f} µs")
    assert per_check_us < 2000  # generous: a slow CI machine, not a benchmark
