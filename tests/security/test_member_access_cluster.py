"""The operator's member credentials: what they may do, asked of a real member API server.

SubjectAccessReviews for the ServiceAccount ``gpufleet dev register`` creates, and the token it
puts in the hub's Secret used for real: no Secrets, no pod exec, no namespace relabelling.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from gpufleet.dev.clusters import RunningFleet
from gpufleet.dev.register import member_kubeconfig
from gpufleet.sites import memberaccess

NAMESPACE = "gpufleet-system"
USER = f"system:serviceaccount:{NAMESPACE}:{memberaccess.SERVICE_ACCOUNT}"
GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"]

# (verb, group, resource, subresource, namespace, name) → allowed?
ALLOWED = [
    ("list", "", "nodes", "", "", ""),
    ("watch", "", "nodes", "", "", ""),
    ("create", "", "pods", "", "team-a", ""),
    ("delete", "", "pods", "", "team-a", "p"),
    ("watch", "", "pods", "", "", ""),
    ("list", "", "namespaces", "", "", ""),
    ("create", "", "namespaces", "", "", ""),
    ("create", "", "events", "", "team-a", ""),
    ("create", "coordination.k8s.io", "leases", "", NAMESPACE, ""),
    ("update", "coordination.k8s.io", "leases", "", NAMESPACE, "gpufleet-fence"),
    ("patch", "coordination.k8s.io", "leases", "", NAMESPACE, "gpufleet-fence"),
    ("create", "", "services", "", "team-a", ""),  # a gang's headless Service
    ("get", "", "configmaps", "", NAMESPACE, "gpufleet-fence"),  # the agent's fence record
    ("get", "", "namespaces", "", "", "kube-system"),  # the cluster's identity
]
DENIED = [
    ("get", "", "secrets", "", NAMESPACE, ""),
    ("list", "", "secrets", "", "", ""),
    ("list", "", "configmaps", "", "", ""),
    ("create", "", "pods", "exec", "team-a", "p"),
    ("get", "", "pods", "exec", "team-a", "p"),
    ("create", "", "pods", "attach", "team-a", "p"),
    ("create", "", "pods", "portforward", "team-a", "p"),
    ("patch", "", "pods", "ephemeralcontainers", "team-a", "p"),
    ("create", "", "pods", "eviction", "team-a", "p"),
    ("update", "", "pods", "", "team-a", "p"),
    ("patch", "", "pods", "status", "team-a", "p"),
    ("patch", "", "namespaces", "", "", "team-a"),
    ("update", "", "namespaces", "", "", "team-a"),
    ("delete", "", "namespaces", "", "", "team-a"),
    ("patch", "", "nodes", "", "", "n1"),
    ("delete", "", "nodes", "", "", "n1"),
    ("get", "", "nodes", "proxy", "", "n1"),
    ("delete", "", "services", "", "team-a", "s"),
    ("update", "", "services", "", "team-a", "s"),
    ("create", "", "serviceaccounts", "token", NAMESPACE, memberaccess.SERVICE_ACCOUNT),
    ("update", "coordination.k8s.io", "leases", "", NAMESPACE, "someone-elses-lease"),
    ("update", "coordination.k8s.io", "leases", "", "kube-system", "kube-scheduler"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", ""),
    ("impersonate", "", "users", "", "", "admin"),
    ("create", "apps", "daemonsets", "", "team-a", ""),
    ("create", "gpufleet.io", "workloads", "", "team-a", ""),
    ("create", "certificates.k8s.io", "certificatesigningrequests", "", "", ""),
]


@pytest.fixture(scope="module")
def member(dev_fleet: RunningFleet) -> Iterator[tuple[Any, str]]:
    cluster = next(c for c in dev_fleet.clusters.values() if not c.hub)
    kubeconfig = member_kubeconfig(cluster, NAMESPACE)
    admin = cluster.api_client()
    try:
        yield admin, kubeconfig
    finally:
        admin.close()


def _review(admin: Any, verb: str, group: str, resource: str, sub: str, ns: str, name: str) -> bool:
    attrs = {"verb": verb, "group": group, "resource": resource}
    for key, value in (("subresource", sub), ("namespace", ns), ("name", name)):
        if value:
            attrs[key] = value
    body = {"spec": {"user": USER, "groups": GROUPS, "resourceAttributes": attrs}}
    result = client.AuthorizationV1Api(admin).create_subject_access_review(body)
    return bool(result.status.allowed)


@pytest.mark.parametrize("attrs", ALLOWED, ids=lambda a: "-".join(x for x in a if x))
def test_the_operator_may_do_what_it_needs(member: tuple[Any, str], attrs: tuple[str, ...]) -> None:
    assert _review(member[0], *attrs)


@pytest.mark.parametrize("attrs", DENIED, ids=lambda a: "-".join(x for x in a if x))
def test_and_nothing_else(member: tuple[Any, str], attrs: tuple[str, ...]) -> None:
    assert not _review(member[0], *attrs)


def test_the_registered_token_works_and_is_refused_secrets_and_relabelling(
    member: tuple[Any, str],
) -> None:
    _, kubeconfig = member
    parsed = yaml.safe_load(kubeconfig)
    assert parsed["users"][0]["user"].keys() == {"token"}  # no client certificate, no admin
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(kubeconfig)
        f.flush()
        api = config.new_client_from_config(config_file=f.name)
    try:
        core = client.CoreV1Api(api)
        assert core.list_pod_for_all_namespaces(limit=1) is not None
        assert core.list_node(limit=1) is not None
        for attempt in (
            lambda: core.list_secret_for_all_namespaces(limit=1),
            lambda: core.list_namespaced_secret(NAMESPACE, limit=1),
            lambda: core.patch_namespace(
                NAMESPACE,
                {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}},
            ),
        ):
            with pytest.raises(ApiException) as refused:
                attempt()
            assert refused.value.status == 403
    finally:
        api.close()
