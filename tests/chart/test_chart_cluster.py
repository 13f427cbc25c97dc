"""helm install/upgrade/uninstall on a real API server, and RBAC asked of it through
SubjectAccessReview. The operator's pod is a KWOK pod: it is scheduled, admitted and
"Running", but no container runs, so these tests check objects, not behaviour."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpufleet.dev.clusters import Cluster

from .helm import CHART, CRDS, SYNC_SCRIPT, helm, source_crds
from .test_chart_crds import load_sync

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("needs_helm")]

RELEASE = "gpufleet"
GPUFLEET_KINDS = ("sites", "gpupools", "queues", "workloads")


@dataclass
class Release:
    hub: Cluster
    namespace: str
    team_namespace: str

    def helm(self, *args: str, check: bool = True) -> str:
        return helm(
            *args, "--namespace", self.namespace, kubeconfig=self.hub.kubeconfig, check=check
        ).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.hub.kubectl(*args, "-o", "json").stdout)

    def create_namespaces(self) -> None:
        """The release's and the team's namespaces; the release's enforces Pod Security
        "restricted", so a pod that does not meet it is refused by the API server's
        admission, not merely warned about."""
        for ns in (self.namespace, self.team_namespace):
            self.hub.kubectl("create", "namespace", ns)
        self.hub.kubectl(
            "label",
            "namespace",
            self.namespace,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        )


def adopt_crds(hub: Cluster, namespace: str) -> None:
    """CRDs applied earlier in the session (kubectl apply -f crds/) become this release's,
    the way Helm documents adopting existing objects."""
    for name in source_crds(CRDS):
        if hub.kubectl("get", "crd", name, check=False).returncode != 0:
            continue
        hub.kubectl(
            "annotate",
            "crd",
            name,
            "--overwrite",
            f"meta.helm.sh/release-name={RELEASE}",
            f"meta.helm.sh/release-namespace={namespace}",
        )
        hub.kubectl("label", "crd", name, "--overwrite", "app.kubernetes.io/managed-by=Helm")


def install(rel: Release) -> None:
    adopt_crds(rel.hub, rel.namespace)
    rel.helm("install", RELEASE, str(CHART), "--wait=false")


@pytest.fixture(scope="module")
def release(hub: Cluster) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    rel = Release(hub, f"gpufleet-{suffix}", f"team-{suffix}")
    rel.create_namespaces()
    install(rel)
    try:
        yield rel
    finally:
        rel.helm("uninstall", RELEASE, check=False)
        hub.kubectl("delete", "clusterrolebinding", f"gpufleet-view-carol-{suffix}", check=False)
        for ns in (rel.namespace, rel.team_namespace):
            hub.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def manifest_objects(rel: Release) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rel.helm("get", "manifest", RELEASE)) if d]


def assert_installed(rel: Release) -> None:
    """The release has every kind it should, and each of its objects exists."""
    objects = manifest_objects(rel)
    kinds = {o["kind"] for o in objects}
    assert {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "ConfigMap",
    } <= kinds
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        args = ["get", obj["kind"], obj["metadata"]["name"], "-o", "name"]
        if namespace:
            args += ["--namespace", namespace]
        assert rel.hub.kubectl(*args, check=False).returncode == 0, obj["metadata"]["name"]


def test_install_creates_every_object(release: Release) -> None:
    assert_installed(release)


def test_the_crds_are_established_and_kept(release: Release) -> None:
    for name in source_crds(CRDS):
        crd = release.json("get", "crd", name)
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True", name


def test_the_operator_pod_is_admitted_under_restricted_pod_security(release: Release) -> None:
    result = release.hub.kubectl(
        "rollout",
        "status",
        f"deployment/{RELEASE}",
        "--namespace",
        release.namespace,
        "--timeout=180s",
        check=False,
        timeout=200,
    )
    events = release.hub.kubectl("get", "events", "-n", release.namespace, check=False).stdout
    assert result.returncode == 0, result.stderr + events
    assert "violates PodSecurity" not in events


def test_the_namespace_really_refuses_a_pod_that_is_not_restricted(release: Release) -> None:
    deployment = release.json("get", "deployment", RELEASE, "-n", release.namespace)
    template = deployment["spec"]["template"]
    compliant = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": template["spec"],
    }
    loose = json.loads(json.dumps(compliant))
    del loose["spec"]["containers"][0]["securityContext"]["capabilities"]

    def dry_run(pod: dict[str, Any]) -> int:
        return release.hub.kubectl(
            "create",
            "--dry-run=server",
            "-n",
            release.namespace,
            "-f",
            "-",
            input=json.dumps(pod),
            check=False,
        ).returncode

    assert dry_run(compliant) == 0
    assert dry_run(loose) != 0


def with_marker(source: Path, target: Path, marker: str) -> None:
    """crds/ with every CRD's top-level schema description changed to `marker`."""
    target.mkdir()
    for path in source.glob("*.yaml"):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in docs:
            for version in doc["spec"]["versions"]:
                version["schema"]["openAPIV3Schema"]["description"] = marker
        (target / path.name).write_text(yaml.safe_dump_all(docs, sort_keys=False))


def schema_descriptions(rel: Release) -> set[str]:
    found = set()
    for name in source_crds(CRDS):
        crd = rel.json("get", "crd", name)
        for version in crd["spec"]["versions"]:
            found.add(version["schema"]["openAPIV3Schema"].get("description", ""))
    return found


def test_upgrade_after_a_crd_change_updates_the_crd(release: Release, tmp_path: Path) -> None:
    assert SYNC_SCRIPT.exists()
    sync = load_sync()
    changed_chart = tmp_path / "gpufleet"
    shutil.copytree(CHART, changed_chart)
    marker = f"upgrade marker {uuid.uuid4().hex}"
    with_marker(CRDS, tmp_path / "crds", marker)
    sync.sync(tmp_path / "crds", changed_chart / "templates" / "crds")

    release.helm("upgrade", RELEASE, str(changed_chart))
    assert schema_descriptions(release) == {marker}
    # And back: the session's other tests expect the CRDs of crds/.
    release.helm("upgrade", RELEASE, str(CHART))
    assert marker not in schema_descriptions(release)


def access(
    rel: Release,
    user: str,
    verb: str,
    resource: str,
    namespace: str = "",
    *,
    group: str = "",
    subresource: str = "",
    groups: tuple[str, ...] = (),
) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": [*groups, "system:authenticated"],
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": resource,
                "subresource": subresource,
                "namespace": namespace,
            },
        },
    }
    answer = rel.hub.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
    allowed: bool = json.loads(answer.stdout)["status"].get("allowed", False)
    return allowed


def operator_can(rel: Release, verb: str, resource: str, namespace: str = "", **kw: Any) -> bool:
    sa = f"system:serviceaccount:{rel.namespace}:{RELEASE}"
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{rel.namespace}")
    return access(rel, sa, verb, resource, namespace, groups=groups, **kw)


def test_the_operator_reads_secrets_only_in_its_namespace(release: Release) -> None:
    for verb in ("get", "list", "watch"):
        assert operator_can(release, verb, "secrets", release.namespace)
        assert not operator_can(release, verb, "secrets", release.team_namespace)
        assert not operator_can(release, verb, "secrets", "kube-system")
        assert not operator_can(release, verb, "secrets")  # all namespaces
    assert not operator_can(release, "create", "secrets", release.namespace)


@pytest.mark.parametrize(
    ("verb", "resource", "group", "subresource", "allowed"),
    [
        ("create", "pods", "", "", True),
        ("delete", "pods", "", "", True),
        ("update", "pods", "", "", False),
        ("create", "pods", "", "exec", False),
        ("patch", "workloads", "gpufleet.io", "status", True),
        ("patch", "sites", "gpufleet.io", "", True),
        ("create", "sites", "gpufleet.io", "", False),
        ("delete", "queues", "gpufleet.io", "", False),
        ("delete", "workloads", "gpufleet.io", "", False),
        ("list", "nodes", "", "", True),
        ("patch", "nodes", "", "", False),
        ("create", "events", "", "", True),
        ("create", "customresourcedefinitions", "apiextensions.k8s.io", "", False),
        ("create", "deployments", "apps", "", False),
        ("create", "clusterrolebindings", "rbac.authorization.k8s.io", "", False),
        ("create", "configmaps", "", "", False),
    ],
)
def test_the_operator_can_do_what_it_needs_and_no_more(
    release: Release, verb: str, resource: str, group: str, subresource: str, allowed: bool
) -> None:
    namespace = (
        ""
        if resource
        in ("nodes", "customresourcedefinitions", "sites", "queues", "clusterrolebindings")
        else release.team_namespace
    )
    got = operator_can(release, verb, resource, namespace, group=group, subresource=subresource)
    assert got is allowed


def test_the_operator_writes_leases_only_in_its_namespace(release: Release) -> None:
    kw = {"group": "coordination.k8s.io"}
    assert operator_can(release, "create", "leases", release.namespace, **kw)
    assert operator_can(release, "update", "leases", release.namespace, **kw)
    assert not operator_can(release, "create", "leases", release.team_namespace, **kw)


def bind(rel: Release, kind: str, name: str, role: str, user: str, namespace: str = "") -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    rel.hub.kubectl("apply", "-f", "-", input=json.dumps(binding))


def test_a_team_editor_submits_workloads_but_cannot_shape_the_fleet(release: Release) -> None:
    team = release.team_namespace
    bind(release, "RoleBinding", "alice-gpufleet-edit", "gpufleet-edit", "alice", team)
    for verb in ("create", "update", "delete"):
        assert access(release, "alice", verb, "workloads", team, group="gpufleet.io")
    assert not access(
        release, "alice", "create", "workloads", release.namespace, group="gpufleet.io"
    )
    for kind in ("sites", "gpupools", "queues"):
        for verb in ("create", "update", "patch", "delete"):
            assert not access(release, "alice", verb, kind, group="gpufleet.io"), (verb, kind)
    assert not access(
        release, "alice", "patch", "workloads", team, group="gpufleet.io", subresource="status"
    )


def test_the_builtin_edit_role_gains_workloads_by_aggregation(release: Release) -> None:
    team = release.team_namespace
    bind(release, "RoleBinding", "bob-edit", "edit", "bob", team)
    deadline = time.monotonic() + 60  # the controller-manager aggregates asynchronously
    while not access(release, "bob", "create", "workloads", team, group="gpufleet.io"):
        assert time.monotonic() < deadline, "edit never gained gpufleet.io workloads"
        time.sleep(2)
    for kind in ("sites", "gpupools", "queues"):
        assert not access(release, "bob", "create", kind, group="gpufleet.io"), kind


def test_a_viewer_reads_the_fleet_but_writes_nothing(release: Release) -> None:
    suffix = release.namespace.rsplit("-", 1)[1]
    bind(release, "ClusterRoleBinding", f"gpufleet-view-carol-{suffix}", "gpufleet-view", "carol")
    for kind in GPUFLEET_KINDS:
        assert access(release, "carol", "list", kind, group="gpufleet.io"), kind
        assert not access(release, "carol", "create", kind, group="gpufleet.io"), kind


MONITORING_CRDS: list[dict[str, Any]] = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "listKind": f"{kind}List",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    for kind, plural in (
        ("ServiceMonitor", "servicemonitors"),
        ("PrometheusRule", "prometheusrules"),
    )
]


@pytest.fixture
def monitoring_api(release: Release) -> Iterator[None]:
    """A stand-in for prometheus-operator's CRDs, unless the cluster already has them."""
    present = release.hub.kubectl(
        "get", "crd", "servicemonitors.monitoring.coreos.com", check=False
    )
    if present.returncode == 0:
        yield
        return
    body = "\n---\n".join(json.dumps(crd) for crd in MONITORING_CRDS)
    release.hub.kubectl("apply", "-f", "-", input=body)
    release.hub.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{c['metadata']['name']}" for c in MONITORING_CRDS),
    )
    try:
        yield
    finally:
        release.helm(
            "upgrade", RELEASE, str(CHART), check=False
        )  # drop them from the release first
        release.hub.kubectl("delete", "-f", "-", "--wait=false", input=body, check=False)


@pytest.mark.usefixtures("monitoring_api")
def test_monitoring_objects_appear_once_the_api_is_served(release: Release) -> None:
    release.helm("upgrade", RELEASE, str(CHART))
    ns = release.namespace
    assert (
        release.hub.kubectl("get", "servicemonitor", RELEASE, "-n", ns, check=False).returncode == 0
    )
    rule = release.json("get", "prometheusrule", RELEASE, "-n", ns)
    alerts = {r["alert"] for r in rule["spec"]["groups"][0]["rules"]}
    assert "GpufleetSiteDisconnected" in alerts
    # Forced off wins over the API being there.
    release.helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "--set",
        "metrics.serviceMonitor.enabled=false",
        "--set",
        "metrics.prometheusRule.enabled=false",
    )
    assert (
        release.hub.kubectl("get", "servicemonitor", RELEASE, "-n", ns, check=False).returncode != 0
    )


def test_uninstall_keeps_the_crds(release: Release) -> None:
    """The CRDs are cluster-wide and one release owns them, so this uninstalls the
    module's release and installs it again: the module's other tests, in any order,
    find it installed."""
    crds = source_crds(CRDS)
    assert crds
    release.helm("uninstall", RELEASE)
    try:
        for name in crds:
            assert release.hub.kubectl("get", "crd", name, check=False).returncode == 0, name
        edit = release.hub.kubectl("get", "clusterrole", "gpufleet-edit", check=False)
        assert edit.returncode != 0, "uninstall left the release's ClusterRoles"
    finally:
        install(release)
    assert_installed(release)
