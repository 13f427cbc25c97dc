"""The operator's high availability in the chart: replicas, spreading, PDB, the Lease."""

from __future__ import annotations

import pytest

from .helm import MONITORING_APIS, of_kind, one, render

pytestmark = pytest.mark.usefixtures("needs_helm")


def test_two_replicas_on_different_nodes_roll_one_at_a_time() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    spec = deployment["spec"]["template"]["spec"]
    hostname = next(
        c for c in spec["topologySpreadConstraints"] if c["topologyKey"] == "kubernetes.io/hostname"
    )
    assert hostname["whenUnsatisfiable"] == "DoNotSchedule"
    assert (
        hostname["labelSelector"]["matchLabels"] == (deployment["spec"]["selector"]["matchLabels"])
    )
    (container,) = spec["containers"]
    assert {"--lease-duration=15", "--renew-deadline=10", "--retry-period=2"} <= set(
        container["args"]
    )
    assert any(e["name"] == "POD_NAME" for e in container["env"])


def test_a_pod_disruption_budget_keeps_a_replica_through_drains() -> None:
    docs = render()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]
    # One replica: a budget would block every drain of its node.
    assert not of_kind(render(sets=["operator.replicas=1"]), "PodDisruptionBudget")


def test_the_operator_may_hold_the_leader_lease() -> None:
    role = next(d for d in of_kind(render(), "Role") if d["metadata"]["name"].endswith("-operator"))
    lease_rules = [r for r in role["rules"] if "coordination.k8s.io" in r["apiGroups"]]
    assert lease_rules
    assert {"get", "create", "update"} <= set(lease_rules[0]["verbs"])
    assert "leases" in lease_rules[0]["resources"]


def test_the_stalled_loop_alert_ignores_standbys() -> None:
    docs = render(api_versions=MONITORING_APIS)
    rules = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    stalled = next(r for r in rules if r["alert"] == "GpufleetSchedulingLoopStalled")
    assert "gpufleet_leader" in stalled["expr"]
