"""Reclaim between queues, and restart safety under kill -9 during a burst.

Both run on KWOK nodes and on hollow kubelets (`tiers`): sizes come from `SHAPE`.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from e2e.handoff import assert_handed_off
from e2e.operator_harness import Fleet, OperatorProcess, queue_obj, wait_for, workload_obj
from e2e.pod_log import PodLog
from gpufleet.api.v1alpha1 import GROUP, VERSION

H100 = "nvidia-h100"


@dataclass(frozen=True)
class Shape:
    """One pool that reclaim is tried in: its class and residency, its size, the gang size."""

    cls: str
    residency: dict[str, list[str]]
    total: int
    gpus: int
    burst: int  # workloads in the kill -9 burst


SHAPE = {
    # The dev fleet's H100 pool at onprem-fra: 16 nodes of 8.
    "kwok": Shape(H100, {"jurisdictions": ["DE"]}, 128, 8, 200),
    # The hollow fleet's H200 pool at factory-osl: 3 hollow nodes of 8.
    "hollow": Shape("nvidia-h200", {"jurisdictions": ["NO"]}, 24, 4, 60),
}


@pytest.mark.tiers
def test_queue_below_deserved_reclaims_from_a_borrower(
    fleet: Fleet, team: str, tier: str, pod_log: PodLog
) -> None:
    shape = SHAPE[tier]
    half = shape.total // 2
    n_borrow, n_lend = shape.total // shape.gpus, half // shape.gpus
    lender, borrower = f"q-{team}-lender", f"q-{team}-borrower"
    lender_ns = team
    borrower_ns = f"{team}-b"
    fleet.hub.kubectl("create", "namespace", borrower_ns)
    fleet.hub.kubectl(
        "label", "namespace", borrower_ns, "pod-security.kubernetes.io/enforce=baseline"
    )
    resources = [{"acceleratorClass": shape.cls, "deserved": half, "limit": shape.total}]
    fleet.apply(
        queue_obj(lender, [lender_ns], resources), queue_obj(borrower, [borrower_ns], resources)
    )
    try:
        # The borrower takes the whole pool while the lender is idle.
        fleet.apply(
            *[
                workload_obj(
                    borrower_ns,
                    f"b{i:02d}",
                    borrower,
                    gpus=shape.gpus,
                    classes=(shape.cls,),
                    residency=shape.residency,
                )
                for i in range(n_borrow)
            ]
        )
        wait_for(
            f"the borrower to hold all {shape.total} {shape.cls}",
            lambda: all(
                fleet.phase(borrower_ns, f"b{i:02d}") == "Running" for i in range(n_borrow)
            ),
            timeout=120,
        )
        # The lender now asks for half of the pool, its deserved share.
        fleet.apply(
            *[
                workload_obj(
                    lender_ns,
                    f"l{i}",
                    lender,
                    gpus=shape.gpus,
                    classes=(shape.cls,),
                    residency=shape.residency,
                )
                for i in range(n_lend)
            ]
        )
        try:
            wait_for(
                f"the lender to get its deserved {half}",
                lambda: all(fleet.phase(lender_ns, f"l{i}") == "Running" for i in range(n_lend)),
                timeout=120,
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nlender: {fleet.statuses(lender_ns)}\nborrower:"
                f" {fleet.statuses(borrower_ns)}\nqueue: {fleet.queue(lender).get('status')}"
            ) from None
        phases = Counter(fleet.phase(borrower_ns, f"b{i:02d}") for i in range(n_borrow))
        assert phases["Running"] == n_borrow - n_lend, phases  # never below its deserved
        assert phases["Preempted"] + phases["Pending"] == n_lend, phases
        evicted = next(
            w
            for w in fleet.workloads(borrower_ns)
            if (w.get("status") or {}).get("phase") in ("Preempted", "Pending")
            and any(c["type"] == "Evicted" for c in w["status"].get("conditions") or [])
        )
        cond = next(c for c in evicted["status"]["conditions"] if c["type"] == "Evicted")
        assert cond["reason"] == "Reclaimed"
        assert lender_ns in cond["message"]

        def allocated() -> dict[str, tuple[Any, Any]]:
            """Each queue's status: total allocated, and allocated of the pool's class."""
            out = {}
            for q in (lender, borrower):
                st = fleet.queue(q).get("status") or {}
                by_class = {r["acceleratorClass"]: r["allocated"] for r in st.get("resources", [])}
                out[q] = ((st.get("totals") or {}).get("allocated"), by_class.get(shape.cls))
            return out

        want = {lender: (half, half), borrower: (half, half)}
        # Statuses follow the pods within a cycle or two; then they must read half each.
        with contextlib.suppress(AssertionError):
            wait_for(f"queue statuses to show {half} each", lambda: allocated() == want)
        assert allocated() == want
        victims = [
            f"{borrower_ns}/{w['metadata']['name']}"
            for w in fleet.workloads(borrower_ns)
            if (w.get("status") or {}).get("phase") != "Running"
        ]
        lenders = [f"{lender_ns}/l{i}" for i in range(n_lend)]
        assert_handed_off(pod_log, victims, lenders, grace=30)  # the default grace period
    finally:
        fleet.delete_all_workloads(borrower_ns)
        fleet.hub.kubectl("delete", "namespace", borrower_ns, "--wait=false", check=False)
        fleet.hub.kubectl("delete", "queue", lender, borrower, "--wait=false", check=False)


def _burst(team: str, queues: list[str], n: int, tier: str) -> list[dict[str, Any]]:
    rng = random.Random(7)
    shapes = [
        (1, 1, ("nvidia-h100", "nvidia-h200"), None),
        (1, 8, ("nvidia-h100",), {"jurisdictions": ["DE"]}),
        (2, 8, ("nvidia-h200",), {"regions": ["EEA"]}),
        (1, 4, ("nvidia-h200",), {"regions": ["EU"]}),
        (1, 16, ("aws-trainium2",), None),
        (4, 8, ("nvidia-h200",), None),
    ]
    if tier == "hollow":
        # Only hollow kubelets: H200 (ams, osl) and the hollow H100 nodes at fra.
        shapes = [
            (1, 1, ("nvidia-h200",), None),
            (1, 8, ("nvidia-h200",), {"jurisdictions": ["NO"]}),
            (2, 8, ("nvidia-h200",), {"regions": ["EEA"]}),
            (1, 4, ("nvidia-h200",), {"regions": ["EU"]}),
            (2, 4, ("nvidia-h200",), None),
        ]
    out = []
    for i in range(n):
        replicas, gpus, classes, residency = rng.choice(shapes)
        spec: dict[str, Any] = {}
        if residency:
            spec["residency"] = residency
        out.append(
            workload_obj(
                team,
                f"w{i:03d}",
                queues[i % len(queues)],
                replicas=replicas,
                gpus=gpus,
                classes=classes,
                **spec,
            )
        )
    return out


@dataclass(frozen=True)
class DispatchCounts:
    admitted: int  # workloads with a recorded placement
    replicas: int  # pods those placements call for
    pods: int  # pods that exist for them

    @property
    def mid_dispatch(self) -> bool:
        return self.admitted > 0 and self.pods < self.replicas


def dispatch_counts(fleet: Fleet, namespace: str) -> DispatchCounts:
    # Workloads first: a pod created after this read can only raise `pods`, so a count
    # that says "mid dispatch" is never an artefact of the order of the reads.
    placed = {
        w["metadata"]["name"]: w["status"]["placement"]
        for w in fleet.workloads(namespace)
        if (w.get("status") or {}).get("placement")
    }
    pods = sum(
        1
        for cluster in fleet.clients
        for pod in fleet.pods(cluster, namespace)
        if pod.metadata.labels["gpufleet.io/workload"] in placed
    )
    replicas = sum(len(p["replicas"]) for p in placed.values())
    return DispatchCounts(len(placed), replicas, pods)


def stable_counts(fleet: Fleet, namespace: str) -> Callable[[], DispatchCounts | None]:
    """A probe that answers once two reads in a row agree (requests sent before a
    SIGSTOP still complete on the servers)."""
    last: list[DispatchCounts] = []

    def probe() -> DispatchCounts | None:
        counts = dispatch_counts(fleet, namespace)
        same = bool(last) and last[-1] == counts
        last.append(counts)
        return counts if same else None

    return probe


@pytest.mark.tiers
def test_kill_9_during_a_burst_loses_and_duplicates_nothing(
    fleet: Fleet, operator: OperatorProcess, team: str, tier: str
) -> None:
    n = SHAPE[tier].burst
    queues = [f"q-{team}-{k}" for k in range(3)]
    limits = {"nvidia-h100": 48, "nvidia-h200": 96, "aws-trainium2": 64}
    fleet.apply(
        *[
            queue_obj(
                q,
                [team],
                [
                    {"acceleratorClass": cls, "deserved": lim // 2, "limit": lim}
                    for cls, lim in limits.items()
                ],
            )
            for q in queues
        ]
    )
    try:
        burst = _burst(team, queues, n, tier)
        # The first half arrive at once: the operator, held still while they are applied,
        # admits them in one go and then spends a while creating their pods.
        operator.pause()
        try:
            fleet.apply(*burst[: n // 2])
        finally:
            operator.resume()
        # Kill in the middle of dispatch: admissions recorded, their pods not all created.
        # The operator records a cycle's placements, then creates their pods: on the first
        # placement it records, hold it still, look, and kill it there.
        first = fleet.first_placement(team, timeout=120)
        operator.pause()
        at_kill = wait_for("the held operator's last writes to land", stable_counts(fleet, team))
        operator.kill9()
        assert dispatch_counts(fleet, team) == at_kill  # nothing moved between look and kill
        assert at_kill.mid_dispatch, f"the kill landed outside dispatch: {at_kill} ({first})"
        print(f"kill -9 landed at {at_kill}")
        fleet.apply(*burst[n // 2 :])
        operator.start()

        def settled() -> list[dict[str, Any]] | None:
            items = fleet.workloads(team)
            if len(items) != n:
                return None
            for w in items:
                st = w.get("status") or {}
                if st.get("phase") == "Admitted":
                    return None  # pods still being created or started
                if st.get("phase") in (None, "Pending") and not st.get("verdicts"):
                    return None  # not looked at yet
            return items

        wait_for(f"all {n} workloads to be decided", settled, timeout=180, interval=2)
        # Two more full cycles after that (the first may have begun before): the operator
        # has seen the settled state and created or removed whatever pods it would.
        cycles = operator.cycles()
        wait_for("two more scheduling cycles", lambda: operator.cycles() >= cycles + 2, timeout=120)
        items = wait_for("the workloads to stay decided", settled, timeout=10)
        names = {w["metadata"]["name"] for w in items}
        assert names == {f"w{i:03d}" for i in range(n)}  # 0 lost
        running = [w for w in items if w["status"]["phase"] == "Running"]
        assert running, "nothing was admitted"
        # Every admitted workload's pods exist exactly once, on its site only, at its epoch.
        pods_by_workload: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for cluster in fleet.clients:
            for pod in fleet.pods(cluster, team):
                if pod.metadata.deletion_timestamp is None:
                    pods_by_workload[pod.metadata.labels["gpufleet.io/workload"]].append(
                        (cluster, pod)
                    )
        duplicates = 0
        for w in running:
            placement = w["status"]["placement"]
            pods = pods_by_workload.pop(w["metadata"]["name"], [])
            clusters = {c for c, _ in pods}
            assert clusters == {placement["site"]}, (w["metadata"]["name"], clusters)
            replicas = Counter(p.metadata.labels["gpufleet.io/replica"] for _, p in pods)
            duplicates += sum(n - 1 for n in replicas.values())
            assert len(replicas) == len(placement["replicas"]), w["metadata"]["name"]
            assert {p.metadata.labels["gpufleet.io/epoch"] for _, p in pods} == {
                str(placement["epoch"])
            }
            assert {p.spec.node_name for _, p in pods} == {r["node"] for r in placement["replicas"]}
        assert duplicates == 0
        assert not pods_by_workload, (
            f"pods of workloads that are not running: {sorted(pods_by_workload)}"
        )
        # No queue above its limit.
        used: Counter[tuple[str, str]] = Counter()
        pool_class = {
            p["metadata"]["name"]: p["spec"]["acceleratorClass"]
            for p in fleet.custom.list_cluster_custom_object(GROUP, VERSION, "gpupools")["items"]
        }
        for w in running:
            p = w["status"]["placement"]
            used[(w["spec"]["queue"], pool_class[p["pool"]])] += (
                len(p["replicas"]) * w["spec"]["acceleratorsPerReplica"]
            )
        for (q, cls), n in used.items():
            assert n <= limits[cls], (q, cls, n)
        # Residency held for every placement.
        site_juris = {
            "onprem-fra": ("DE", {"EU", "EEA"}),
            "localzone-ams": ("NL", {"EU", "EEA"}),
            "factory-osl": ("NO", {"EEA", "EFTA"}),
        }
        for w in running:
            res = w["spec"].get("residency") or {}
            j, regions = site_juris[w["status"]["placement"]["site"]]
            if res:
                assert j in res.get("jurisdictions", []) or regions & set(res.get("regions", [])), (
                    w["metadata"]["name"]
                )
    finally:
        # Whatever failed, leave the session's operator running for the tests after this.
        operator.resume()
        if operator.proc is None or operator.proc.poll() is not None:
            operator.start()
        fleet.delete_all_workloads(team)
        fleet.hub.kubectl("delete", "queue", *queues, "--wait=false", check=False)
        wait_for(
            "the burst's pods to be removed",
            lambda: not any(fleet.pods(c, team) for c in fleet.clients),
            timeout=120,
            interval=2,
        )
