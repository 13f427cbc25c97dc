"""Least privilege, read off the rendered roles (the cluster tests ask the API server too)."""

from __future__ import annotations

import pytest

from .helm import Doc, of_kind, render

pytestmark = pytest.mark.usefixtures("needs_helm")


def rules(doc: Doc) -> list[Doc]:
    found: list[Doc] = doc.get("rules") or []
    return found


def grants(doc: Doc, group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in rules(doc):
        if group in rule["apiGroups"] and resource in rule["resources"]:
            verbs |= set(rule["verbs"])
    return verbs


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return render(namespace="gpu-ops")


def test_no_role_uses_a_wildcard(docs: list[Doc]) -> None:
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in rules(role):
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (role["metadata"]["name"], rule)
            assert "resourceNames" not in rule or rule["resourceNames"]


def test_secrets_are_readable_only_in_the_operators_namespace(docs: list[Doc]) -> None:
    for cluster_role in of_kind(docs, "ClusterRole"):
        assert not grants(cluster_role, "", "secrets"), cluster_role["metadata"]["name"]
    (role,) = of_kind(docs, "Role")
    assert role["metadata"]["namespace"] == "gpu-ops"
    assert grants(role, "", "secrets") == {"get", "list", "watch"}
    (binding,) = of_kind(docs, "RoleBinding")
    assert binding["metadata"]["namespace"] == "gpu-ops"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_the_operator_has_what_it_needs_and_no_more(docs: list[Doc]) -> None:
    (operator,) = [
        r for r in of_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("-operator")
    ]
    for kind in ("sites", "gpupools", "queues", "workloads"):
        assert grants(operator, "gpufleet.io", kind) == {"get", "list", "watch", "patch", "update"}
        assert grants(operator, "gpufleet.io", f"{kind}/status") == {"get", "patch", "update"}
    assert grants(operator, "", "pods") == {"get", "list", "watch", "create", "delete"}
    assert grants(operator, "", "nodes") == {"get", "list", "watch"}
    assert grants(operator, "", "namespaces") == {"get", "list", "watch"}
    assert grants(operator, "", "events") == {"create", "patch"}
    assert grants(operator, "apiextensions.k8s.io", "customresourcedefinitions") == {
        "get",
        "list",
        "watch",
    }
    resources = {res for rule in rules(operator) for res in rule["resources"]}
    assert "leases" not in resources  # namespaced: the Role has them


def test_user_roles_aggregate_into_the_builtin_ones(docs: list[Doc]) -> None:
    roles = {r["metadata"]["name"]: r for r in of_kind(docs, "ClusterRole")}
    for name, builtin in (("admin", "admin"), ("edit", "edit"), ("view", "view")):
        labels = roles[f"gpufleet-{name}"]["metadata"]["labels"]
        assert labels[f"rbac.authorization.k8s.io/aggregate-to-{builtin}"] == "true"
    edit = roles["gpufleet-edit"]
    assert {res for rule in rules(edit) for res in rule["resources"]} == {
        "workloads",
        "workloads/status",
    }
    view = roles["gpufleet-view"]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in rules(view))


def test_user_roles_can_be_left_out() -> None:
    names = {
        r["metadata"]["name"] for r in of_kind(render(sets=["rbac.userRoles=false"]), "ClusterRole")
    }
    assert not {"gpufleet-admin", "gpufleet-edit", "gpufleet-view"} & names
