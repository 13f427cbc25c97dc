"""The operator places real pods across real clusters, obeying residency, quota and topology."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.operator_harness import Fleet, queue_obj, wait_for, workload_obj

H100 = "nvidia-h100"
H200 = "nvidia-h200"


@pytest.fixture
def queue(fleet: Fleet, team: str) -> Iterator[str]:
    name = f"q-{team}"
    fleet.apply(
        queue_obj(
            name,
            [team],
            [
                {"acceleratorClass": H100, "deserved": 64, "limit": 128},
                {"acceleratorClass": H200, "deserved": 64, "limit": 288},
                {"acceleratorClass": "aws-trainium2", "deserved": 0, "limit": 128},
            ],
        )
    )
    yield name
    fleet.hub.kubectl("delete", "queue", name, "--wait=false", check=False)


def _pods_by_cluster(fleet: Fleet, ns: str, name: str) -> dict[str, list[str]]:
    return {
        c: [p.spec.node_name for p in pods]
        for c, pods in fleet.workload_pods(ns, name).items()
        if pods
    }


def test_eu_restricted_gang_lands_whole_on_an_eu_site(fleet: Fleet, team: str, queue: str) -> None:
    fleet.apply(
        workload_obj(
            team,
            "eu-gang",
            queue,
            replicas=4,
            gpus=8,
            classes=(H200,),
            residency={"regions": ["EU"]},
        )
    )
    w = fleet.wait_phase(team, "eu-gang", {"Running"})
    placement = w["status"]["placement"]
    assert placement["site"] == "localzone-ams"  # the only EU site with H200
    pods = wait_for(
        "four pods",
        lambda: (
            p
            if sum(map(len, (p := _pods_by_cluster(fleet, team, "eu-gang")).values())) == 4
            else None
        ),
    )
    assert set(pods) == {"localzone-ams"}
    assert sorted(pods["localzone-ams"]) == sorted(r["node"] for r in placement["replicas"])


def test_gang_that_fits_only_outside_its_residency_stays_pending_and_says_why(
    fleet: Fleet, team: str, queue: str
) -> None:
    # 5 x 8 H200 does not fit in the EU's 32 H200; Norway has room but is not in the EU.
    fleet.apply(
        workload_obj(
            team,
            "too-big-for-eu",
            queue,
            replicas=5,
            gpus=8,
            classes=(H200,),
            residency={"regions": ["EU"]},
        )
    )

    def verdicts() -> dict[str, str] | None:
        st = fleet.workload(team, "too-big-for-eu").get("status") or {}
        found = {v.get("site"): v["rule"] for v in st.get("verdicts") or []}
        return found if "factory-osl" in found and "localzone-ams" in found else None

    found = wait_for("per-site verdicts", verdicts)
    assert found["factory-osl"] == "ResidencyDenied"
    assert found["localzone-ams"] in {"InsufficientAccelerators", "TopologyUnsatisfiable"}
    assert fleet.phase(team, "too-big-for-eu") == "Pending"
    assert not any(fleet.workload_pods(team, "too-big-for-eu").values())


def test_rack_level_gang_of_16_by_8_lands_within_one_rack(
    fleet: Fleet, team: str, queue: str
) -> None:
    fleet.apply(
        workload_obj(
            team,
            "rack-gang",
            queue,
            replicas=16,
            gpus=8,
            classes=(H200,),
            topology={"required": "topology.gpufleet.io/rack"},
            residency={"jurisdictions": ["NO"]},
        )
    )
    w = fleet.wait_phase(team, "rack-gang", {"Running"}, timeout=90)
    placement = w["status"]["placement"]
    assert placement["site"] == "factory-osl"
    labels = fleet.nodes("factory-osl")
    racks = {labels[r["node"]]["topology.gpufleet.io/rack"] for r in placement["replicas"]}
    assert len(racks) == 1, racks
    pods = fleet.workload_pods(team, "rack-gang")["factory-osl"]
    assert len(pods) == 16
    assert {labels[p.spec.node_name]["topology.gpufleet.io/rack"] for p in pods} == racks


def test_finished_pods_release_quota_and_the_next_workload_starts(fleet: Fleet, team: str) -> None:
    name = f"q-{team}-small"
    fleet.apply(queue_obj(name, [team], [{"acceleratorClass": H100, "deserved": 8, "limit": 8}]))
    try:
        fleet.apply(workload_obj(team, "first", name, gpus=8, classes=(H100,)))
        fleet.wait_phase(team, "first", {"Running"})
        fleet.apply(workload_obj(team, "second", name, gpus=8, classes=(H100,)))

        def limited() -> bool:
            st = fleet.workload(team, "second").get("status") or {}
            return any(v["rule"] == "QuotaLimitReached" for v in st.get("verdicts") or [])

        wait_for("the second workload to wait on the queue's limit", limited)
        assert fleet.finish_pods(team, "first") == 1
        fleet.wait_phase(team, "first", {"Succeeded"})
        fleet.wait_phase(team, "second", {"Running"})
    finally:
        fleet.hub.kubectl("delete", "queue", name, "--wait=false", check=False)


def test_a_failed_replica_fails_the_workload_and_stops_the_gang(
    fleet: Fleet, team: str, queue: str
) -> None:
    fleet.apply(workload_obj(team, "fragile", queue, replicas=2, gpus=8, classes=(H100,)))
    fleet.wait_phase(team, "fragile", {"Running"})
    pods = fleet.workload_pods(team, "fragile")["onprem-fra"]
    from kubernetes import client

    client.CoreV1Api(fleet.clients["onprem-fra"]).patch_namespaced_pod_status(
        pods[0].metadata.name, team, {"status": {"phase": "Failed", "reason": "OOMKilled"}}
    )
    w = fleet.wait_phase(team, "fragile", {"Failed"})
    finished = next(c for c in w["status"]["conditions"] if c["type"] == "Finished")
    assert finished["reason"] == "PodFailed"
    assert "OOMKilled" in finished["message"]
    wait_for(
        "the surviving replica to be stopped",
        lambda: all(
            p.status.phase in ("Failed", "Succeeded") or p.metadata.deletion_timestamp
            for p in fleet.workload_pods(team, "fragile")["onprem-fra"]
        ),
    )


def test_max_runtime_is_enforced(fleet: Fleet, team: str, queue: str) -> None:
    fleet.apply(workload_obj(team, "short", queue, gpus=1, classes=(H100,), maxRuntimeSeconds=3))
    w = fleet.wait_phase(team, "short", {"Failed"}, timeout=30)
    finished = next(c for c in w["status"]["conditions"] if c["type"] == "Finished")
    assert finished["reason"] == "MaxRuntimeExceeded"


def test_deleting_a_workload_removes_its_pods_on_the_remote_cluster(
    fleet: Fleet, team: str, queue: str
) -> None:
    fleet.apply(
        workload_obj(team, "remote", queue, replicas=2, gpus=16, classes=("aws-trainium2",))
    )
    fleet.wait_phase(team, "remote", {"Running"})
    assert len(fleet.workload_pods(team, "remote")["factory-osl"]) == 2
    fleet.hub.kubectl("delete", "workload", "-n", team, "remote")
    wait_for("the remote pods to go", lambda: not any(fleet.workload_pods(team, "remote").values()))


def test_namespace_not_allowed_by_the_queue_is_explained(fleet: Fleet, team: str) -> None:
    name = f"q-{team}-closed"
    fleet.apply(queue_obj(name, ["someone-else"], [{"acceleratorClass": H100, "deserved": 8}]))
    try:
        fleet.apply(workload_obj(team, "intruder", name, gpus=1, classes=(H100,)))

        def rule() -> str | None:
            st = fleet.workload(team, "intruder").get("status") or {}
            return next((v["rule"] for v in st.get("verdicts") or []), None)

        assert wait_for("a verdict", rule) == "NamespaceNotAllowed"
    finally:
        fleet.hub.kubectl("delete", "queue", name, "--wait=false", check=False)


def test_a_queue_admits_the_namespaces_its_selector_matches(fleet: Fleet, team: str) -> None:
    """namespaceSelector through the real path: the hub connection's namespace watch feeds
    the cache, whose view the loop translates with."""
    name = f"q-{team}-by-label"
    other = f"{team}-x"
    fleet.hub.kubectl("label", "namespace", team, f"gpufleet-test/tenant={team}")
    fleet.hub.kubectl("create", "namespace", other)
    # Hub-local sites dispatch into the Workload's namespace: it must enforce Pod Security.
    fleet.hub.kubectl("label", "namespace", other, "pod-security.kubernetes.io/enforce=baseline")
    fleet.apply(
        {
            **queue_obj(name, [], [{"acceleratorClass": H100, "deserved": 8}]),
            "spec": {
                "namespaceSelector": {"matchLabels": {"gpufleet-test/tenant": team}},
                "resources": [{"acceleratorClass": H100, "deserved": 8}],
            },
        }
    )
    try:
        fleet.apply(
            workload_obj(team, "member", name, gpus=1, classes=(H100,)),
            workload_obj(other, "outsider", name, gpus=1, classes=(H100,)),
        )
        fleet.wait_phase(team, "member", {"Running"})

        def rule() -> str | None:
            st = fleet.workload(other, "outsider").get("status") or {}
            return next((v["rule"] for v in st.get("verdicts") or []), None)

        assert wait_for("a verdict for the unlabelled namespace", rule) == "NamespaceNotAllowed"
        # Labelled later: the namespace watch brings the label, and the workload is admitted.
        fleet.hub.kubectl("label", "namespace", other, f"gpufleet-test/tenant={team}")
        fleet.wait_phase(other, "outsider", {"Running"})
    finally:
        fleet.delete_all_workloads(other)
        fleet.hub.kubectl("delete", "namespace", other, "--wait=false", check=False)
        fleet.hub.kubectl("delete", "queue", name, "--wait=false", check=False)
