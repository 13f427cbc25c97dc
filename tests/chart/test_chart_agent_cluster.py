"""`helm install` in agent mode on a real API server, and the agent's rights asked of it
through SubjectAccessReview. The agent's pod is a KWOK pod: admitted and "Running", but
no container runs, so these tests check objects and permissions, not fencing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from gpufleet.dev.clusters import Cluster

from .helm import CHART
from .test_chart_cluster import Release, access

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("needs_helm")]

LEASES = {"group": "coordination.k8s.io"}
CRDS = {"group": "apiextensions.k8s.io"}


@dataclass
class AgentRelease:
    rel: Release
    name: str
    install_output: str
    objects: list[dict[str, Any]]

    @property
    def service_account(self) -> str:
        (sa,) = [o for o in self.objects if o["kind"] == "ServiceAccount"]
        name: str = sa["metadata"]["name"]
        return name

    def can(self, verb: str, resource: str, namespace: str = "", **kw: Any) -> bool:
        ns = self.rel.namespace
        return access(
            self.rel,
            f"system:serviceaccount:{ns}:{self.service_account}",
            verb,
            resource,
            namespace,
            groups=("system:serviceaccounts", f"system:serviceaccounts:{ns}"),
            **kw,
        )


@contextmanager
def agent_release(hub: Cluster) -> Iterator[AgentRelease]:
    """An agent-mode release in namespaces of its own, removed afterwards."""
    suffix = uuid.uuid4().hex[:6]
    rel = Release(hub, f"fence-{suffix}", f"team-{suffix}")
    name = f"fence-{suffix}"
    rel.create_namespaces()  # restricted, as for the operator
    try:
        out = rel.helm(
            "install",
            name,
            str(CHART),
            "--set",
            "mode=agent",
            "--set",
            "crds.install=false",
            # The operator's member access is test_chart_member_access_cluster.py's.
            "--set",
            "agent.memberAccess=false",
            "--wait=false",
        )
        manifest = rel.helm("get", "manifest", name)
        yield AgentRelease(rel, name, out, [d for d in yaml.safe_load_all(manifest) if d])
    finally:
        rel.helm("uninstall", name, check=False)
        for ns in (rel.namespace, rel.team_namespace):
            hub.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def agent(hub: Cluster) -> Iterator[AgentRelease]:
    with agent_release(hub) as release:
        yield release


def test_install_creates_only_the_agents_objects(agent: AgentRelease) -> None:
    assert sorted(o["kind"] for o in agent.objects) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"]
    )
    for obj in agent.objects:
        args = ["get", obj["kind"], obj["metadata"]["name"], "-o", "name"]
        if namespace := obj["metadata"].get("namespace"):
            args += ["--namespace", namespace]
        assert agent.rel.hub.kubectl(*args, check=False).returncode == 0, obj["metadata"]["name"]
    assert "gpufleet fence agent" in agent.install_output
    assert f"Lease {agent.rel.namespace}/gpufleet-fence" in agent.install_output


def test_the_agent_pod_is_admitted_under_restricted_pod_security(agent: AgentRelease) -> None:
    (deployment,) = [o for o in agent.objects if o["kind"] == "Deployment"]
    ns = agent.rel.namespace
    result = agent.rel.hub.kubectl(
        "rollout",
        "status",
        f"deployment/{deployment['metadata']['name']}",
        "--namespace",
        ns,
        "--timeout=180s",
        check=False,
        timeout=200,
    )
    events = agent.rel.hub.kubectl("get", "events", "-n", ns, check=False).stdout
    assert result.returncode == 0, result.stderr + events
    assert "violates PodSecurity" not in events


@pytest.mark.parametrize("verb", ["get", "list", "delete"])
def test_the_agent_can_stop_pods_in_any_namespace(agent: AgentRelease, verb: str) -> None:
    assert agent.can(verb, "pods", agent.rel.team_namespace)
    assert agent.can(verb, "pods", "kube-system")
    if verb == "list":
        assert agent.can(verb, "pods")  # all namespaces: what the agent asks for


@pytest.mark.parametrize("verb", ["create", "update", "patch", "watch"])
def test_the_agent_cannot_otherwise_touch_pods(agent: AgentRelease, verb: str) -> None:
    assert not agent.can(verb, "pods", agent.rel.team_namespace)


def test_the_agent_cannot_exec_into_or_evict_pods(agent: AgentRelease) -> None:
    team = agent.rel.team_namespace
    assert not agent.can("create", "pods", team, subresource="exec")
    assert not agent.can("create", "pods", team, subresource="eviction")


@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_the_agent_reads_leases_only_in_its_namespace(agent: AgentRelease, verb: str) -> None:
    assert agent.can(verb, "leases", agent.rel.namespace, **LEASES)
    assert not agent.can(verb, "leases", agent.rel.team_namespace, **LEASES)
    assert not agent.can(verb, "leases", "kube-node-lease", **LEASES)
    assert not agent.can(verb, "leases", **LEASES)  # all namespaces


@pytest.mark.parametrize("verb", ["create", "update", "patch", "delete"])
def test_the_agent_cannot_write_leases(agent: AgentRelease, verb: str) -> None:
    assert not agent.can(verb, "leases", agent.rel.namespace, **LEASES)


@pytest.mark.parametrize("verb", ["get", "list", "watch", "create"])
def test_the_agent_cannot_touch_secrets(agent: AgentRelease, verb: str) -> None:
    for namespace in (agent.rel.namespace, agent.rel.team_namespace, ""):
        assert not agent.can(verb, "secrets", namespace), namespace or "all namespaces"


@pytest.mark.parametrize("verb", ["create", "update", "patch", "delete", "get"])
def test_the_agent_cannot_touch_crds(agent: AgentRelease, verb: str) -> None:
    assert not agent.can(verb, "customresourcedefinitions", **CRDS)


def test_the_agent_cannot_touch_gpufleet_objects(agent: AgentRelease) -> None:
    assert not agent.can("list", "workloads", group="gpufleet.io")
    assert not agent.can("patch", "sites", group="gpufleet.io")


def test_uninstall_removes_every_agent_object(hub: Cluster) -> None:
    # A release of its own: uninstalling the module's would break the tests after this one.
    # Checked before the namespaces go, which would take the namespaced objects with them.
    with agent_release(hub) as agent:
        assert agent.objects
        agent.rel.helm("uninstall", agent.name)
        for obj in agent.objects:
            args = ["get", obj["kind"], obj["metadata"]["name"], "-o", "name"]
            if namespace := obj["metadata"].get("namespace"):
                args += ["--namespace", namespace]
            gone = agent.rel.hub.kubectl(*args, check=False).returncode != 0
            assert gone, obj["metadata"]["name"]
