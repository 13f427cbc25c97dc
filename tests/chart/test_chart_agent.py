"""mode=agent: the chart installs only the fence agent of a member cluster."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from .helm import (
    CHART,
    MONITORING_APIS,
    Doc,
    helm,
    of_kind,
    one,
    render,
    render_notes,
    value_args,
)

pytestmark = pytest.mark.usefixtures("needs_helm")

# The agent's own objects; the operator's member access (on by default) is
# test_chart_member_access.py's.
AGENT = ("mode=agent", "crds.install=false", "agent.memberAccess=false")
NAMESPACE = "gpu-edge"
AGENT_KINDS = Counter(
    {
        "ServiceAccount": 1,
        "ClusterRole": 1,
        "ClusterRoleBinding": 1,
        "Role": 1,
        "RoleBinding": 1,
        "Deployment": 1,
    }
)
# Everything operator mode can render, switched on: agent mode must still leave it out.
EVERYTHING_ON = (
    "operator.enabled=true",
    "rbac.userRoles=true",
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.dashboard.enabled=true",
)


def agent_docs(*sets: str, **kw: Any) -> list[Doc]:
    return render(sets=[*AGENT, *sets], namespace=NAMESPACE, **kw)


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(docs: list[Doc]) -> Doc:
    (only,) = pod_spec(docs)["containers"]
    found: Doc = only
    return found


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return agent_docs()


@pytest.mark.parametrize(
    ("sets", "apis"),
    [((), ()), (EVERYTHING_ON, MONITORING_APIS)],
    ids=["defaults", "everything-else-switched-on"],
)
def test_agent_mode_renders_only_the_agents_objects(
    sets: tuple[str, ...], apis: tuple[str, ...]
) -> None:
    rendered = agent_docs(*sets, api_versions=apis)
    assert Counter(d["kind"] for d in rendered) == AGENT_KINDS
    assert one(rendered, "Deployment")["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "agent"
    )


def test_operator_mode_renders_no_agent() -> None:
    rendered = render()
    components = {d["metadata"]["labels"].get("app.kubernetes.io/component") for d in rendered}
    assert "agent" not in components
    assert not [d for d in rendered if d["metadata"]["name"].endswith("-agent")]


def test_the_agent_runs_gpufleet_agent_with_its_values() -> None:
    args = container(
        agent_docs("agent.fenceSeconds=45", "agent.origin=gpufleet-eu", "image.tag=9.9.9")
    )["args"]
    assert args == [
        "agent",
        f"--namespace={NAMESPACE}",
        "--origin=gpufleet-eu",
        "--fence-seconds=45",
    ]


@pytest.mark.parametrize(
    "values",
    [pytest.param((), id="defaults"), pytest.param((CHART / "ci" / "agent-values.yaml",), id="ci")],
)
def test_the_container_args_are_ones_gpufleet_agent_accepts(values: tuple[Any, ...]) -> None:
    import typer.main

    from gpufleet.cli import app

    sets = () if values else AGENT
    args = container(render(values=values, sets=sets, namespace=NAMESPACE))["args"]
    command: Any = typer.main.get_command(app)
    subcommand, *rest = args
    assert subcommand == "agent"
    # Parsing checks every option and its type without starting the agent.
    params = command.commands[subcommand].make_context(subcommand, list(rest)).params
    assert params["namespace"] == NAMESPACE
    assert params["origin"] == ("gpufleet-prod" if values else "gpufleet")
    assert params["fence_seconds"] == (45 if values else 60)


def test_the_agent_pod_is_hardened_exactly_like_the_operators(docs: list[Doc]) -> None:
    operator = render(namespace=NAMESPACE)
    agent_spec, operator_spec = pod_spec(docs), pod_spec(operator)
    assert agent_spec["securityContext"] == operator_spec["securityContext"]
    assert container(docs)["securityContext"] == container(operator)["securityContext"]
    # And what that is: Pod Security "restricted", read-only root with a scratch /tmp.
    pod = agent_spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(docs)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in agent_spec["volumes"]}
    assert set(volumes[mounts["/tmp"]]) == {"name", "emptyDir"}
    assert all(set(v) <= {"name", "emptyDir"} for v in agent_spec["volumes"])
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert host not in agent_spec


def test_one_agent_under_the_release_service_account(docs: list[Doc]) -> None:
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    # Never zero agents during a rollout: the cluster would be unfenced meanwhile.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod_spec(docs)["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    assert "ports" not in container(docs)


def rules(doc: Doc) -> list[Doc]:
    found: list[Doc] = doc.get("rules") or []
    return found


def test_no_agent_role_uses_a_wildcard_or_touches_secrets(docs: list[Doc]) -> None:
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in rules(role):
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (role["metadata"]["name"], rule)
            assert "secrets" not in rule["resources"], role["metadata"]["name"]


def test_the_agent_may_delete_pods_cluster_wide_read_leases_and_record_its_fence_here(
    docs: list[Doc],
) -> None:
    cluster_role = one(docs, "ClusterRole")
    assert rules(cluster_role) == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]}
    ]
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rules(role) == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch"],
        },
        # Its fence record (sites/fence.py), created once and then only that ConfigMap.
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["gpufleet-fence"],
            "verbs": ["get", "update"],
        },
    ]
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}
    for binding, bound in (("ClusterRoleBinding", cluster_role), ("RoleBinding", role)):
        doc = one(docs, binding)
        assert doc["subjects"] == [subject]
        assert doc["roleRef"]["kind"] == bound["kind"]
        assert doc["roleRef"]["name"] == bound["metadata"]["name"]
    assert one(docs, "RoleBinding")["metadata"]["namespace"] == NAMESPACE


def test_rbac_and_the_service_account_can_be_brought_by_the_user() -> None:
    rendered = agent_docs(
        "rbac.create=false", "serviceAccount.create=false", "serviceAccount.name=fence"
    )
    assert Counter(d["kind"] for d in rendered) == Counter({"Deployment": 1})
    assert pod_spec(rendered)["serviceAccountName"] == "fence"


def test_agent_mode_refuses_to_install_crds() -> None:
    result = helm("template", "x", str(CHART), "--set", "mode=agent", check=False)
    assert result.returncode != 0
    assert "crds.install must be false when mode=agent" in result.stderr


@pytest.mark.parametrize(
    ("sets", "field", "rule"),
    [
        (["agent.fenceSeconds=4"], "/agent/fenceSeconds", "minimum"),
        (["agent.fenceSeconds=sixty"], "/agent/fenceSeconds", "integer"),
        (["agent.fenceSeconds=30.5"], "/agent/fenceSeconds", "integer"),
        (["agent.origin=not a label"], "/agent/origin", "pattern"),
        (["mode=hub"], "/mode", "one of"),
        (["agent.replicas=2"], "/agent", "replicas"),
    ],
)
def test_bad_agent_values_are_rejected_naming_the_field_and_rule(
    sets: list[str], field: str, rule: str
) -> None:
    result = helm("template", "x", str(CHART), *value_args(sets=[*AGENT, *sets]), check=False)
    assert result.returncode != 0
    assert f"'{field}'" in result.stderr
    assert rule in result.stderr


def test_agent_notes_say_what_the_agent_fences_and_what_it_needs() -> None:
    notes = render_notes(
        sets=[*AGENT, "agent.fenceSeconds=45", "agent.origin=gpufleet-eu"], namespace=NAMESPACE
    )
    assert f"Lease {NAMESPACE}/gpufleet-fence has not been renewed for 45s" in notes
    assert "gpufleet.io/managed-by=gpufleet,gpufleet.io/origin=gpufleet-eu" in notes
    assert "--fence-seconds + --site-loss-grace" in notes
    assert "rollout status deployment/fleet-gpufleet-agent" in notes
    assert "CRDs" not in notes


def test_operator_notes_do_not_mention_the_agent() -> None:
    notes = render_notes()
    assert notes.startswith("gpufleet 0.1.0 is installed in namespace gpufleet-system.")
    assert "fence agent" not in notes
