"""Cordoned sites and priority inside a queue, end to end."""

from __future__ import annotations

from e2e.operator_harness import Fleet, queue_obj, wait_for, workload_obj


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


def test_higher_priority_preempts_lower_priority_in_the_same_queue(fleet: Fleet, team: str) -> None:
    q = f"q-{team}"
    fleet.apply(
        queue_obj(q, [team], [{"acceleratorClass": "nvidia-h100", "deserved": 8, "limit": 8}])
    )
    try:
        fleet.apply(workload_obj(team, "batch", q, gpus=8, classes=("nvidia-h100",), priority=0))
        fleet.wait_phase(team, "batch", {"Running"})
        fleet.apply(workload_obj(team, "urgent", q, gpus=8, classes=("nvidia-h100",), priority=100))
        fleet.wait_phase(team, "urgent", {"Running"})
        batch = fleet.wait_phase(team, "batch", {"Preempted"})
        evicted = next(c for c in batch["status"]["conditions"] if c["type"] == "Evicted")
        assert evicted["reason"] == "Preempted"
        assert f"{team}/urgent" in evicted["message"]
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
    finally:
        fleet.hub.kubectl("delete", "queue", q, "--wait=false", check=False)
