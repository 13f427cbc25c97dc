"""Cordoned sites and priority inside a queue, end to end."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.handoff import assert_handed_off
from e2e.operator_harness import Fleet, queue_obj, wait_for, workload_obj
from e2e.pod_log import PodLog

# The accelerator class of the tier's tests: on the hollow fleet, H200 lives on hollow
# kubelets only (its H100 pool has KWOK nodes beside the hollow ones).
CLASS = {"kwok": "nvidia-h100", "hollow": "nvidia-h200"}


def _rules(fleet: Fleet, ns: str, name: str) -> dict[str | None, str]:
    st = fleet.workload(ns, name).get("status") or {}
    return {v.get("site"): v["rule"] for v in st.get("verdicts") or []}


def test_a_cordoned_site_takes_nothing_new_until_uncordoned(fleet: Fleet, team: str) -> None:
    q = f"q-{team}"
    fleet.apply(queue_obj(q, [team], [{"acceleratorClass": "nvidia-h200", "deserved": 8}]))
    site = "localzone-ams"
    try:
        fleet.hub.kubectl(
            "patch", "site", site, "--type=merge", "-p", '{"spec":{"schedulable":false}}'
        )
        fleet.apply(
            workload_obj(
                team,
                "dutch",
                q,
                gpus=8,
                classes=("nvidia-h200",),
                residency={"jurisdictions": ["NL"]},
            )
        )
        rules = wait_for(
            "a verdict at the cordoned site",
            lambda: r if site in (r := _rules(fleet, team, "dutch")) else None,
        )
        assert rules[site] == "SiteUnschedulable"
        assert fleet.phase(team, "dutch") == "Pending"
        fleet.hub.kubectl(
            "patch", "site", site, "--type=merge", "-p", '{"spec":{"schedulable":true}}'
        )
        w = fleet.wait_phase(team, "dutch", {"Running"})
        assert w["status"]["placement"]["site"] == site
    finally:
        fleet.hub.kubectl(
            "patch",
            "site",
            site,
            "--type=merge",
            "-p",
            '{"spec":{"schedulable":true}}',
            check=False,
        )
        fleet.hub.kubectl("delete", "queue", q, "--wait=false", check=False)


@pytest.mark.tiers
def test_higher_priority_preempts_lower_priority_in_the_same_queue(
    fleet: Fleet, team: str, tier: str, pod_log: PodLog
) -> None:
    q = f"q-{team}"
    # The queue's grace period (10 s) is inherited from its parent.
    parent = f"{q}-org"
    cls = CLASS[tier]
    fleet.apply(
        queue_obj(
            parent,
            [],
            [{"acceleratorClass": cls, "deserved": 8}],
            preemption={"gracePeriodSeconds": 10},
        ),
    )
    fleet.apply(
        queue_obj(q, [team], [{"acceleratorClass": cls, "deserved": 8, "limit": 8}], parent=parent)
    )
    try:
        fleet.apply(workload_obj(team, "batch", q, gpus=8, classes=(cls,), priority=0))
        fleet.wait_phase(team, "batch", {"Running"})
        fleet.apply(workload_obj(team, "urgent", q, gpus=8, classes=(cls,), priority=100))
        # Admitted and recorded at once, its pods held while the victim's terminate.
        held = wait_for(
            "the preemptor to say whom it waits for",
            lambda: c if (c := _condition(fleet, team, "urgent", "PodsHeld")) else None,
        )
        assert held["status"] == "True", held
        assert f"{team}/batch" in held["message"]
        batch = fleet.wait_phase(team, "batch", {"Preempted"})
        evicted = next(c for c in batch["status"]["conditions"] if c["type"] == "Evicted")
        assert evicted["reason"] == "Preempted"
        assert f"{team}/urgent" in evicted["message"]
        fleet.wait_phase(team, "urgent", {"Running"})
        released = _condition(fleet, team, "urgent", "PodsHeld")
        assert released is not None
        assert released["status"] == "False"
        wait_for(
            "the preempted pods to go",
            lambda: (
                not any(
                    p.metadata.deletion_timestamp is None
                    for pods in fleet.workload_pods(team, "batch").values()
                    for p in pods
                )
            ),
        )
        assert_handed_off(pod_log, [f"{team}/batch"], [f"{team}/urgent"], grace=10)
    finally:
        fleet.hub.kubectl("delete", "queue", q, parent, "--wait=false", check=False)


def _condition(fleet: Fleet, ns: str, name: str, type_: str) -> dict[str, Any] | None:
    conds = (fleet.workload(ns, name).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == type_), None)
