"""mode=agent also installs the hub operator's least-privilege access to the member."""

from __future__ import annotations

import pytest

from gpufleet.sites import memberaccess

from .helm import Doc, of_kind, one, render

pytestmark = pytest.mark.usefixtures("needs_helm")
NAMESPACE = "gpufleet-system"


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    rendered = render(sets=["mode=agent", "crds.install=false"], namespace=NAMESPACE)
    return [d for d in rendered if d["metadata"]["name"].endswith("member-operator") or
            d["metadata"]["name"].endswith("member-operator-token")]  # fmt: skip


def test_the_chart_grants_exactly_what_gpufleet_sites_memberaccess_says(docs: list[Doc]) -> None:
    assert one(docs, "ClusterRole")["rules"] == memberaccess.CLUSTER_RULES
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == memberaccess.LEASE_RULES


def test_bindings_name_the_member_operator_account_and_its_token_secret(docs: list[Doc]) -> None:
    sa = one(docs, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        assert one(docs, kind)["subjects"] == [subject]
    secret = one(docs, "Secret")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {
        "kubernetes.io/service-account.name": sa["metadata"]["name"]
    }


def test_no_wildcards_no_secrets_no_exec_no_namespace_updates(docs: list[Doc]) -> None:
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key]
            assert "secrets" not in rule["resources"]
            # Services: a gang's headless Service only needs get/create/patch.
            if "services" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "create", "patch"}, rule
            # ConfigMaps: only the fence record, by name (or its creation, which has no name yet).
            if "configmaps" in rule["resources"]:
                assert rule.get("resourceNames") == ["gpufleet-fence"] or rule["verbs"] == [
                    "create"
                ], rule
            assert not any("/" in r for r in rule["resources"])  # no subresources at all
            if "namespaces" in rule["resources"]:
                assert not {"update", "patch", "delete"} & set(rule["verbs"])


def test_member_access_can_be_left_out() -> None:
    rendered = render(
        sets=["mode=agent", "crds.install=false", "agent.memberAccess=false"], namespace=NAMESPACE
    )
    assert not [d for d in rendered if "member-operator" in d["metadata"]["name"]]
