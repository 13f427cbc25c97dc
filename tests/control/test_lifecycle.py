"""Placed workloads follow their pods; restarts redo only what is missing."""

from __future__ import annotations

import time

from gpufleet import core
from gpufleet.control import statuses
from gpufleet.control.lifecycle import plan_lifecycle
from gpufleet.observed.cache import HUB, FenceRecord
from gpufleet.observed.translate import translate

from .builders import World

NOW = time.time()


def plan(world: World, now: float = NOW, site_loss_after: float = 90.0):  # type: ignore[no-untyped-def]
    view = world.cache.view()
    return plan_lifecycle(view, translate(view, {}), now, "gpufleet", site_loss_after)


def test_missing_pods_of_an_admitted_workload_are_created_under_their_own_names() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0", "fra-1"], phase="Admitted")
    w.pod(HUB, "ns", "job", 0, "fra-0")
    p = plan(w)
    assert len(p.creates) == 1
    assert p.creates[0].missing == (1,)
    assert p.creates[0].epoch == 1
    assert p.deletes == []


def test_all_pods_running_marks_the_workload_running() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0", "fra-1"], phase="Admitted")
    for i in range(2):
        w.pod(HUB, "ns", "job", i, f"fra-{i}")
    p = plan(w)
    assert [(c.workload, c.phase) for c in p.changes] == [("ns/job", "Running")]
    assert p.changes[0].started


def test_all_pods_succeeded_finishes_the_workload() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0"])
    w.pod(HUB, "ns", "job", 0, "fra-0", phase="Succeeded")
    p = plan(w)
    assert [(c.phase, c.reason) for c in p.changes] == [("Succeeded", "AllReplicasSucceeded")]


def test_one_failed_replica_fails_the_gang_and_stops_the_others() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0", "fra-1"])
    w.pod(HUB, "ns", "job", 0, "fra-0", phase="Failed")
    w.pod(HUB, "ns", "job", 1, "fra-1")
    p = plan(w)
    assert [(c.phase, c.reason) for c in p.changes] == [("Failed", "PodFailed")]
    assert [d.pods for d in p.deletes] == [("ns/job-e1-1",)]


def test_max_runtime_fails_the_workload() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0"], started=NOW - 100, maxRuntimeSeconds=60)
    w.pod(HUB, "ns", "job", 0, "fra-0")
    p = plan(w)
    assert [c.reason for c in p.changes] == ["MaxRuntimeExceeded"]
    assert [d.reason for d in p.deletes] == ["MaxRuntimeExceeded"]


def test_pods_of_stale_epochs_deleted_workloads_and_other_uids_are_removed() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0"], epoch=2)
    w.pod(HUB, "ns", "job", 0, "fra-0", epoch=2)
    w.pod(HUB, "ns", "job", 0, "fra-1", epoch=1)  # an earlier dispatch
    w.pod(HUB, "ns", "gone", 0, "fra-2")  # its workload was deleted
    w.pod(HUB, "ns", "theirs", 0, "fra-3", origin="another-operator")  # not ours to touch
    p = plan(w)
    stray = {pod for d in p.deletes for pod in d.pods}
    assert stray == {"ns/job-e1-0", "ns/gone-e1-0"}
    assert p.creates == []


def test_a_pod_left_by_an_older_workload_of_the_same_name_is_not_adopted() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0"])
    w.pod(HUB, "ns", "job", 0, "fra-0", uid="uid-of-an-older-job")
    p = plan(w)
    assert {pod for d in p.deletes for pod in d.pods} == {"ns/job-e1-0"}
    assert [(c.workload, c.missing) for c in p.creates] == [("ns/job", (0,))]


def test_a_disconnected_site_is_reported_on_its_workloads_but_nothing_moves_within_the_grace() -> (
    None
):
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "ams", "h200", ["ams-0"], onSiteLoss="Requeue")
    w.connect("ams", connected=False, renewed=NOW - 30)
    p = plan(w, site_loss_after=90)
    assert [(c.workload, c.phase, c.reason, c.site_reachable) for c in p.changes] == [
        ("ns/job", "Running", "SiteUnreachable", "False")
    ]
    assert (p.creates, p.deletes) == ([], [])
    _mark_unreachable(w, "ns", "job")
    assert plan(w, site_loss_after=90).changes == []


def _mark_unreachable(w: World, ns: str, name: str) -> None:
    body = w.cache.workloads[f"{ns}/{name}"]
    body["status"]["conditions"] = [
        {
            "type": "SiteReachable",
            "status": "False",
            "reason": "SiteUnreachable",
            "message": "",
            "lastTransitionTime": "2026-11-28T10:00:00Z",
        }
    ]
    body["metadata"]["resourceVersion"] = w.rv()


def _lost_pair(w: World) -> None:
    w.placed("ns", "movable", "q", "ams", "h200", ["ams-0"], onSiteLoss="Requeue")
    w.placed("ns", "patient", "q", "ams", "h200", ["ams-1"], onSiteLoss="Wait")
    for name in ("movable", "patient"):
        _mark_unreachable(w, "ns", name)


def test_silence_alone_never_moves_a_workload_it_says_what_it_waits_for() -> None:
    w = World().queue("q", ["ns"])
    _lost_pair(w)
    w.connect("ams", connected=False, renewed=NOW - 10_000)
    p = plan(w, site_loss_after=90)
    assert [(c.workload, c.phase, c.reason, c.clear_placement) for c in p.changes] == [
        ("ns/movable", "Running", "FenceUnconfirmed", False)
    ]
    assert "declare-lost ams" in p.changes[0].message
    assert (p.creates, p.deletes) == ([], [])


def test_a_declaration_after_the_placement_moves_requeue_workloads_at_once() -> None:
    w = World().queue("q", ["ns"])
    _lost_pair(w)
    w.connect("ams", connected=False, renewed=NOW - 30)  # well within fence + grace
    w.declare_lost("ams", at=NOW - 1, by="alice@example.com")
    p = plan(w, site_loss_after=90)
    assert [(c.workload, c.phase, c.reason, c.clear_placement) for c in p.changes] == [
        ("ns/movable", "Pending", "SiteLost", True)
    ]
    assert "declared lost by alice@example.com" in p.changes[0].message


def test_a_declaration_older_than_the_placement_covers_nothing() -> None:
    w = World().queue("q", ["ns"])
    _lost_pair(w)
    w.connect("ams", connected=False, renewed=NOW - 10_000)
    w.declare_lost("ams", at=NOW - 3 * 86400 - 3600)  # before admittedAt (2026-11-28T10:00Z)
    assert [c.reason for c in plan(w, site_loss_after=90).changes] == ["FenceUnconfirmed"]


def test_the_agents_confirmed_fence_moves_requeue_workloads() -> None:
    w = World().queue("q", ["ns"])
    _lost_pair(w)
    w.connect("ams", connected=False, renewed=NOW - 30)
    w.cache.fence_read("ams", FenceRecord("41", "2026-11-30T10:00:00Z", True), confirmed=True)
    p = plan(w, site_loss_after=90)
    assert [(c.workload, c.reason) for c in p.changes] == [("ns/movable", "SiteLost")]


def test_an_unconfirmed_fence_record_is_no_evidence() -> None:
    w = World().queue("q", ["ns"])
    _lost_pair(w)
    w.connect("ams", connected=False, renewed=NOW - 10_000)
    # Made before the Lease's last renewal, or with pods left: not a confirmation.
    w.cache.fence_read("ams", FenceRecord("40", "2026-11-30T10:00:00Z", False), confirmed=False)
    assert [c.reason for c in plan(w, site_loss_after=90).changes] == ["FenceUnconfirmed"]


def test_back_after_the_agent_fenced_requeue_moves_and_wait_stays() -> None:
    w = World().queue("q", ["ns"])
    _lost_pair(w)
    w.cache.fence_read("ams", FenceRecord("41", "2026-11-30T10:00:00Z", True), confirmed=True)
    p = plan(w)  # ams answers again
    assert sorted((c.workload, c.phase, c.reason, c.site_reachable) for c in p.changes) == [
        ("ns/movable", "Pending", "SiteLost", "True"),
        ("ns/patient", "Running", "SiteReachable", "True"),
    ]


def test_pods_of_a_running_workload_that_went_are_recreated_with_an_event_reason() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "job", "q", "fra", "h100", ["fra-0", "fra-1"], phase="Running")
    w.pod(HUB, "ns", "job", 0, "fra-0")
    p = plan(w)
    assert [(c.missing, c.epoch) for c in p.creates] == [((1,), 1)]
    assert [(c.phase, c.reason, c.running) for c in p.changes] == [
        ("Admitted", "PodsRecreated", "False")
    ]


def test_a_second_site_on_a_claimed_cluster_sweeps_nothing() -> None:
    w = World().queue("q", ["ns"])
    w.site("ams-fr", "FR", local=False)
    for cluster in ("ams", "ams-fr"):
        w.cache.cluster_identified(cluster, "uid-of-ams")
        w.connect(cluster)
    # The same pod, seen through both connections: ams's placement keeps it.
    w.placed("ns", "job", "q", "ams", "h200", ["ams-0"])
    for cluster in ("ams", "ams-fr"):
        w.pod(cluster, "ns", "job", 0, "ams-0")
    p = plan(w)
    assert p.deletes == []


def test_a_reconnected_site_clears_the_condition() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "patient", "q", "ams", "h200", ["ams-0"], onSiteLoss="Wait")
    _mark_unreachable(w, "ns", "patient")
    p = plan(w)
    assert [(c.reason, c.site_reachable) for c in p.changes] == [("SiteReachable", "True")]


def test_finished_workloads_keep_finished_pods_but_not_running_ones() -> None:
    w = World().queue("q", ["ns"])
    w.placed("ns", "done", "q", "fra", "h100", ["fra-0", "fra-1"], phase="Failed")
    w.pod(HUB, "ns", "done", 0, "fra-0", phase="Failed")
    w.pod(HUB, "ns", "done", 1, "fra-1", phase="Running")
    p = plan(w)
    assert [d.pods for d in p.deletes] == [("ns/done-e1-1",)]


def test_placed_again_at_the_site_in_the_second_its_fence_was_read_it_stays() -> None:
    # The site is back; the agent's fence was read back at hh:mm:ss.4 and the workload,
    # requeued on it, was placed again at the same site at .6 (its conditions still say
    # the site was unreachable, as the admission wrote them). The fence is older than the
    # new placement: no evidence against it. With admittedAt cut to the second (.0) the
    # new placement looked older than the fence and was requeued at once, then placed a
    # third time (seen in the site-loss e2e test).
    w = World().queue("q", ["ns"])
    body = w.placed("ns", "movable", "q", "ams", "h200", ["ams-0"], onSiteLoss="Requeue")
    second = float(int(NOW))
    w.cache.fence_read("ams", FenceRecord("41", "2026-11-30T10:00:00Z", True), confirmed=True)
    w.connect("ams", connected=True)
    w.cache.cluster("ams").fence_confirmed_at = second + 0.4
    admission = core.Admission("ns/movable", "ams", "h200", ("ams-0",))
    patch = statuses.admission_status(body, admission, ["ams-0"], second + 0.6)
    w.workload("ns", "movable", "q", status={**body["status"], **patch}, onSiteLoss="Requeue")
    _mark_unreachable(w, "ns", "movable")
    changes = [(c.reason, c.clear_placement) for c in plan(w, now=second + 0.8).changes]
    assert changes == [("SiteReachable", False)]
