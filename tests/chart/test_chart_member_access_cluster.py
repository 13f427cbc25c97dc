"""`helm install` in agent mode also gives the hub operator a least-privilege account here.

Installed on a real API server: the token Secret is filled in, and SubjectAccessReviews of
the member-operator ServiceAccount allow what gpufleet.sites.memberaccess lists and refuse
Secrets, exec and relabelling namespaces.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import yaml

from gpufleet.dev.clusters import Cluster

from .helm import CHART
from .test_chart_cluster import Release, access

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("needs_helm")]


@pytest.fixture(scope="module")
def release(hub: Cluster) -> Iterator[tuple[Release, str]]:
    suffix = uuid.uuid4().hex[:6]
    rel = Release(hub, f"member-{suffix}", f"team-{suffix}")
    name = f"member-{suffix}"
    rel.create_namespaces()
    try:
        rel.helm(
            "install", name, str(CHART), "--set", "mode=agent", "--set", "crds.install=false",
            "--wait=false",
        )  # fmt: skip
        manifest = [d for d in yaml.safe_load_all(rel.helm("get", "manifest", name)) if d]
        (account,) = [
            d["metadata"]["name"]
            for d in manifest
            if d["kind"] == "ServiceAccount" and d["metadata"]["name"].endswith("member-operator")
        ]
        yield rel, account
    finally:
        rel.helm("uninstall", name, check=False)
        for ns in (rel.namespace, rel.team_namespace):
            hub.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _can(rel: Release, name: str, verb: str, resource: str, namespace: str = "", **kw: str) -> bool:
    ns = rel.namespace
    return access(
        rel,
        f"system:serviceaccount:{ns}:{name}",
        verb,
        resource,
        namespace,
        groups=("system:serviceaccounts", f"system:serviceaccounts:{ns}"),
        **kw,
    )


def test_the_token_secret_is_filled_in(release: tuple[Release, str]) -> None:
    rel, name = release
    deadline = time.monotonic() + 60
    token = ""
    while not token and time.monotonic() < deadline:
        token = rel.hub.kubectl(
            "get", "secret", f"{name}-token", "-n", rel.namespace,
            "-o", "jsonpath={.data.token}", check=False,
        ).stdout.strip()  # fmt: skip
        if not token:
            time.sleep(0.5)  # polling the token controller, bounded by the deadline
    assert token


def test_the_member_operator_may_dispatch_and_nothing_else(release: tuple[Release, str]) -> None:
    rel, name = release
    team = rel.team_namespace
    assert _can(rel, name, "create", "pods", team)
    assert _can(rel, name, "delete", "pods", team)
    assert _can(rel, name, "watch", "nodes")
    assert _can(rel, name, "create", "namespaces")
    assert _can(rel, name, "create", "leases", rel.namespace, group="coordination.k8s.io")
    assert not _can(rel, name, "get", "secrets", rel.namespace)
    assert not _can(rel, name, "list", "secrets")
    assert not _can(rel, name, "create", "pods", team, subresource="exec")
    assert not _can(rel, name, "patch", "namespaces")
    assert _can(rel, name, "create", "services", team)  # a gang's headless Service
    assert not _can(rel, name, "delete", "services", team)
    assert not _can(rel, name, "patch", "leases", "kube-system", group="coordination.k8s.io")
