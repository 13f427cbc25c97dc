"""The Python Pod Security check agrees with the real kube-apiserver (v1.37) on every pod tried.

Each corpus template, the benign ones and hypothesis-generated ones are server-side
dry-run-created (``dryRun=All``: admission runs, nothing is stored) in namespaces labelled
``pod-security.kubernetes.io/enforce=<level>``; the Python verdict must match the server's.
A pod is first dry-run in a privileged namespace, so a pod the server finds invalid for other
reasons cannot pass for an agreement. The cost of both is measured for docs/security.md.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.rest import ApiException

from gpufleet.api import podsecurity
from gpufleet.api.podtemplate import TemplatePolicy, check_workload
from gpufleet.dev.clusters import Cluster
from gpufleet.sites.dispatch import plan_pods

from .corpus import IMAGE, RESTRICTED_CONTEXT, benign, load

LEVELS = ("baseline", "restricted")
TIMINGS: list[float] = []


@pytest.fixture(scope="module")
def levels(hub: Cluster) -> Iterator[tuple[client.CoreV1Api, dict[str, str]]]:
    api = hub.api_client()
    core = client.CoreV1Api(api)
    names = {}
    for level in ("privileged", *LEVELS):
        name = f"pss-{level}-{uuid.uuid4().hex[:6]}"
        core.create_namespace(
            {"metadata": {"name": name, "labels": podsecurity.namespace_labels(level)}}
        )
        names[level] = name
    try:
        yield core, names
    finally:
        for name in names.values():
            core.delete_namespace(name)
        api.close()


def _pod(template: dict[str, Any]) -> dict[str, Any]:
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p-{uuid.uuid4().hex[:8]}",
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
        },
        "spec": copy.deepcopy(template["spec"]),
    }


def server_allows(core: client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> tuple[bool, str]:
    started = time.perf_counter()
    try:
        core.create_namespaced_pod(namespace, pod, dry_run="All", _preload_content=False)
        return True, ""
    except ApiException as exc:
        body = json.loads(exc.body or "{}")
        return False, f"{exc.status} {body.get('message', '')}"
    finally:
        TIMINGS.append(time.perf_counter() - started)


def assert_agreement(
    core: client.CoreV1Api, names: dict[str, str], template: dict[str, Any]
) -> int:
    """Dry-run ``template`` at every level; fail on any disagreement. Returns the checks made."""
    pod = _pod(template)
    valid, why = server_allows(core, names["privileged"], pod)
    assert valid, f"not a valid pod, so it proves nothing about Pod Security: {why}\n{pod}"
    annotations = pod["metadata"]["annotations"]
    for level in LEVELS:
        python = podsecurity.check(pod["spec"], level, annotations=annotations)  # type: ignore[arg-type]
        allowed, why = server_allows(core, names[level], pod)
        assert allowed == (not python), (
            f"{level}: kube-apiserver says {'allowed' if allowed else why!r},"
            f" Python says {[str(v) for v in python] or 'allowed'}\n{pod['spec']}"
        )
        if not allowed:
            assert "violates PodSecurity" in why, why
    return len(LEVELS)


PSS_CASES = [c for c in load() if c.kind == "pss"]


@pytest.mark.parametrize("case", PSS_CASES, ids=lambda c: c.id)
def test_corpus_verdicts_match_the_api_server(
    levels: tuple[client.CoreV1Api, dict[str, str]], case: Any
) -> None:
    core, names = levels
    assert_agreement(core, names, case.template)
    # And the case is refused at its own level, by both.
    assert podsecurity.check(
        case.template["spec"],
        case.level,
        annotations=(case.template.get("metadata") or {}).get("annotations"),
    )


@pytest.mark.parametrize("level", LEVELS)
def test_benign_templates_are_allowed_by_both(
    levels: tuple[client.CoreV1Api, dict[str, str]], level: str
) -> None:
    core, names = levels
    template = benign(level)
    assert_agreement(core, names, template)
    allowed, why = server_allows(core, names[level], _pod(template))
    assert allowed, why


# Fragments a generated pod is made of: each may be absent, benign, or hostile.
_SC = st.fixed_dictionaries(
    {},
    optional={
        "privileged": st.booleans(),
        "allowPrivilegeEscalation": st.booleans(),
        "runAsNonRoot": st.booleans(),
        "runAsUser": st.sampled_from([0, 1000]),
        "procMount": st.just("Default"),
        "capabilities": st.fixed_dictionaries(
            {},
            optional={
                "add": st.lists(st.sampled_from(["CHOWN", "NET_BIND_SERVICE", "SYS_ADMIN", "NET_RAW", "KILL"]), max_size=2, unique=True),
                "drop": st.lists(st.sampled_from(["ALL", "NET_RAW"]), max_size=2, unique=True),
            },
        ),
        "seccompProfile": st.sampled_from([{"type": "RuntimeDefault"}, {"type": "Unconfined"}]),
        "seLinuxOptions": st.sampled_from([{"type": "container_t"}, {"type": "spc_t"}, {"level": "s0:c1"}]),
        "appArmorProfile": st.sampled_from([{"type": "RuntimeDefault"}, {"type": "Unconfined"}]),
    },
)  # fmt: skip
_POD_SC = st.fixed_dictionaries(
    {},
    optional={
        "runAsNonRoot": st.booleans(),
        "runAsUser": st.sampled_from([0, 1000]),
        "seccompProfile": st.sampled_from([{"type": "RuntimeDefault"}, {"type": "Unconfined"}]),
        "sysctls": st.lists(
            st.sampled_from([{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "8192"}, {"name": "net.ipv4.tcp_keepalive_time", "value": "60"}]),
            max_size=2, unique_by=lambda s: s["name"],
        ),
    },
)  # fmt: skip
_VOLUMES = st.lists(
    st.sampled_from([{"emptyDir": {}}, {"hostPath": {"path": "/tmp"}}, {"configMap": {"name": "x"}}, {"nfs": {"server": "n", "path": "/"}}, {"gitRepo": {"repository": "r"}}]),
    max_size=2,
)  # fmt: skip


@st.composite
def pod_templates(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    containers = []
    for i in range(n):
        c: dict[str, Any] = {"name": f"c{i}", "image": IMAGE}
        sc = draw(_SC)
        if sc:
            if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
                sc["allowPrivilegeEscalation"] = True  # the API server refuses the pair as invalid
            c["securityContext"] = sc
        if draw(st.booleans()):
            c["ports"] = [
                {"containerPort": 80 + i, **({"hostPort": 8080 + i} if draw(st.booleans()) else {})}
            ]
        containers.append(c)
    spec: dict[str, Any] = {"containers": containers}
    psc = draw(_POD_SC)
    if psc:
        spec["securityContext"] = psc
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if draw(st.integers(0, 5)) == 0:
            spec[field] = True
    sysctls = (spec.get("securityContext") or {}).get("sysctls")
    if sysctls:
        # Namespaced sysctls are invalid beside the host namespace they would change.
        shared = (
            "net." if spec.get("hostNetwork") else "~",
            "kernel." if spec.get("hostIPC") else "~",
        )
        psc["sysctls"] = [s for s in sysctls if not s["name"].startswith(shared)]
    if spec.get("hostNetwork"):
        for c in containers:  # with hostNetwork, hostPort must equal containerPort
            for port in c.get("ports", []):
                if "hostPort" in port:
                    port["hostPort"] = port["containerPort"]
    volumes = draw(_VOLUMES)
    if volumes:
        spec["volumes"] = [{"name": f"v{i}", **v} for i, v in enumerate(volumes)]
    if draw(st.integers(0, 3)) == 0:
        # The restricted base: generated pods must also come out allowed, not only refused.
        for c in containers:
            c["securityContext"] = copy.deepcopy(RESTRICTED_CONTEXT)
    return {"spec": spec}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(template=pod_templates())
def test_generated_pods_get_the_same_verdict_from_both(
    levels: tuple[client.CoreV1Api, dict[str, str]], template: dict[str, Any]
) -> None:
    core, names = levels
    assert_agreement(core, names, template)


# What the server refuses when the pod is built (422), named by the Python check first.
SERVER_REFUSES = {
    "name-64", "name-253", "container-bad-name", "container-name-64", "container-duplicate",
    "init-container-clash", "container-no-image", "volume-bad-name", "port-name-long",
    "port-out-of-range", "ephemeral-container", "annotation-huge", "proc-mount-unmasked",
}  # fmt: skip


@pytest.mark.parametrize("case", [c for c in load() if c.id in SERVER_REFUSES], ids=lambda c: c.id)
def test_pods_the_api_server_would_refuse_are_refused_by_the_check_first(
    levels: tuple[client.CoreV1Api, dict[str, str]], case: Any
) -> None:
    core, names = levels
    body = {
        "metadata": {"name": case.name, "namespace": names["privileged"], "uid": "u"},
        "spec": {"template": case.template, "acceleratorsPerReplica": 1},
    }
    (plan,) = plan_pods(
        workload=body, site="s", nodes=["n"], epoch=1, resource_name="nvidia.com/gpu", origin="o"
    )
    allowed, why = server_allows(core, names["privileged"], plan.manifest)
    assert not allowed, f"the API server accepted {case.id}"
    paths = {
        f.path for f in check_workload(case.name, case.template, TemplatePolicy(level="privileged"))
    }
    assert case.path in paths, why


def test_cost_of_a_dry_run_against_a_python_check(
    levels: tuple[client.CoreV1Api, dict[str, str]], record_property: Any
) -> None:
    core, names = levels
    template = benign("restricted")
    pod = _pod(template)
    n = 50
    started = time.perf_counter()
    for _ in range(n):
        server_allows(core, names["restricted"], pod)
    dry_run_ms = (time.perf_counter() - started) / n * 1e3
    started = time.perf_counter()
    for _ in range(n * 20):
        podsecurity.check(pod["spec"], "restricted")
    check_us = (time.perf_counter() - started) / (n * 20) * 1e6
    record_property("dry_run_ms", dry_run_ms)
    record_property("pss_check_us", check_us)
    print(f"\ndry run: {dry_run_ms:.2f} ms per pod; Python Pod Security check: {check_us:.1f} µs")
    print(
        f"all dry runs of this module so far: {len(TIMINGS)}, median {sorted(TIMINGS)[len(TIMINGS) // 2] * 1e3:.2f} ms"
    )
    assert check_us * 10 < dry_run_ms * 1e3  # the reason to check in Python before admission
