"""What the operator's credentials for a member cluster may do there, and nothing more.

The operator reaches each member through a kubeconfig Secret on the hub. That
kubeconfig should hold the token of a ServiceAccount bound to these rules, not
an administrator's certificate: whoever reads the Secret (or takes over the
operator) gets exactly this. The chart's agent mode installs the same rules
(``charts/gpufleet/templates/rbac-member.yaml``; a chart test holds the two to
each other) and ``gpufleet dev register`` builds the dev fleet's Secrets from
them.

| rule | why |
| --- | --- |
| nodes: get, list, watch | capacity and readiness of the member's GPU nodes |
| pods: get, list, watch, create, delete | dispatch, lifecycle, stray and fence clean-up |
| namespaces: get, list, watch, create | Pod Security labels of target namespaces; creating a missing one labelled (never update/patch: an existing namespace is not relabelled) |
| events: create, patch | Events beside the pods gpufleet creates |
| leases in the operator's namespace: create, and get/update/patch of ``gpufleet-fence`` | the fence Lease the agent watches |

Not granted, on purpose: Secrets and ConfigMaps (a workload's Secret is mounted
by the kubelet, never read by gpufleet), ``pods/exec``, ``pods/attach``,
``pods/portforward``, ``pods/ephemeralcontainers``, ``pods/eviction``, ``nodes``
writes, Services (gpufleet creates none), RBAC objects, and any wildcard.
"""

from __future__ import annotations

from typing import Any

from gpufleet.sites.fence import LEASE_NAME, RECORD_NAME

SERVICE_ACCOUNT = "gpufleet-operator"
ROLE_NAME = "gpufleet-member-operator"

CLUSTER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["get", "list", "watch", "create", "delete"],
    },
    # A gang's headless Service (sites/gang.py); its pods own it, the garbage collector removes it.
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch", "create"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
# create cannot be limited by name (the object does not exist yet); the rest can.
LEASE_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [LEASE_NAME],
        "verbs": ["get", "update", "patch"],
    },
    # The agent's fence record: the operator reads it back as evidence the pods were stopped.
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [RECORD_NAME],
        "verbs": ["get"],
    },
]


def objects(namespace: str) -> list[dict[str, Any]]:
    """The ServiceAccount, roles and bindings for the operator in a member, in ``namespace``."""
    rbac = "rbac.authorization.k8s.io/v1"
    labels = {"app.kubernetes.io/name": "gpufleet", "app.kubernetes.io/component": "member-access"}
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}]
    meta = {"name": ROLE_NAME, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": labels},
            # Nothing in the member runs as this account; it only holds the operator's token.
            "automountServiceAccountToken": False,
        },
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": meta, "rules": CLUSTER_RULES},
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": ROLE_NAME,
            },
            "subjects": subject,
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {**meta, "namespace": namespace},
            "rules": LEASE_RULES,
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {**meta, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
            "subjects": subject,
        },
        {
            # A long-lived token the API server fills in; it is copied into the hub's Secret.
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": f"{SERVICE_ACCOUNT}-token",
                "namespace": namespace,
                "labels": labels,
                "annotations": {"kubernetes.io/service-account.name": SERVICE_ACCOUNT},
            },
        },
    ]


def token_kubeconfig(admin_kubeconfig: dict[str, Any], token: str, user: str) -> dict[str, Any]:
    """The admin kubeconfig's cluster (server, CA) with ``token`` as its only user."""
    context_name = admin_kubeconfig.get("current-context")
    contexts = {c["name"]: c["context"] for c in admin_kubeconfig.get("contexts") or []}
    cluster_name = (contexts.get(context_name) or {}).get("cluster")
    clusters = [c for c in admin_kubeconfig.get("clusters") or [] if c["name"] == cluster_name]
    if not clusters:
        raise ValueError("the kubeconfig names no cluster for its current context")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": user,
    }
