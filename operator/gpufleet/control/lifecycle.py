"""What should happen to workloads that are already placed, read from their pods.

Pure: it looks at a cache view and the translated inputs and returns the
status changes and pod operations to carry out. Running it twice on the same
view gives the same answer, which is why a restart at any moment is safe:
missing pods are created again under the same names, stray pods are removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpufleet.api.v1alpha1 import Placement, ReplicaPlacement, Workload
from gpufleet.observed.cache import CacheView
from gpufleet.observed.records import LABEL_ORIGIN, PodRecord
from gpufleet.observed.translate import RUNNING_PHASES, Inputs, timestamp
from gpufleet.sites.dispatch import pod_name


@dataclass(frozen=True)
class StatusChange:
    workload: str
    phase: str
    reason: str
    message: str
    clear_placement: bool = False
    started: bool = False
    finished: bool = False
    # Set the SiteReachable condition to this status ("True"/"False") with the reason above.
    site_reachable: str | None = None


@dataclass(frozen=True)
class PodCreate:
    workload: str
    cluster: str
    site: str
    epoch: int
    nodes: tuple[str, ...]
    missing: tuple[int, ...]
    resource_name: str


@dataclass(frozen=True)
class PodDelete:
    cluster: str
    pods: tuple[str, ...]
    reason: str


@dataclass
class LifecyclePlan:
    changes: list[StatusChange] = field(default_factory=list)
    creates: list[PodCreate] = field(default_factory=list)
    deletes: list[PodDelete] = field(default_factory=list)


def _pods_by_workload(view: CacheView) -> dict[str, list[tuple[str, PodRecord]]]:
    out: dict[str, list[tuple[str, PodRecord]]] = {}
    for cluster, state in view.clusters.items():
        for pod in state.pods.values():
            if pod.managed and pod.workload_key is not None:
                out.setdefault(pod.workload_key, []).append((cluster, pod))
    return out


def plan_lifecycle(
    view: CacheView, inputs: Inputs, now: float, origin: str, site_loss_after: float = 90.0
) -> LifecyclePlan:
    plan = LifecyclePlan()
    pods_of = _pods_by_workload(view)
    keep: set[tuple[str, str]] = set()  # (cluster, pod key) that belong where they are

    for key, wl in inputs.workload_models.items():
        status = wl.status
        phase = status.phase if status and status.phase else "Pending"
        placement = status.placement if status else None
        mine = [
            (c, p)
            for c, p in pods_of.get(key, [])
            if p.labels.get("gpufleet.io/workload-uid") == wl.metadata.uid
        ]
        if phase in ("Succeeded", "Failed"):
            # Finished pods stay for their logs; anything still running goes.
            keep.update((c, p.key) for c, p in mine if p.terminal)
            continue
        if placement is None or phase not in RUNNING_PHASES:
            continue
        cluster = inputs.site_cluster.get(placement.site)
        pool = inputs.pool_models.get(placement.pool)
        if cluster is None or pool is None:
            continue
        state = view.clusters.get(cluster)
        expected = replica_pods(wl, placement)
        present = {
            p.key: p for c, p in mine if c == cluster and p.key in expected and not p.deleting
        }
        keep.update((cluster, k) for k in present)
        reachable = _condition_status(wl, "SiteReachable")
        if state is not None and not state.connected:
            silent = now - state.lease_renewed_at
            if reachable != "False":
                then = (
                    "the workload waits for it (onSiteLoss: Wait)"
                    if wl.spec.on_site_loss == "Wait"
                    else f"the workload is placed again once {site_loss_after:.0f}s pass without a fence renewal"
                )
                plan.changes.append(
                    StatusChange(
                        key,
                        phase,
                        "SiteUnreachable",
                        f"site {placement.site} does not answer ({state.reason}); {then}",
                        site_reachable="False",
                    )
                )
                continue
            if silent > site_loss_after and wl.spec.on_site_loss == "Requeue":
                # The site's agent has stopped our pods there by now (fence < site_loss_after).
                plan.changes.append(
                    StatusChange(
                        key,
                        "Pending",
                        "SiteLost",
                        f"site {placement.site} unreachable, no fence renewal for {silent:.0f}s; placing the workload again",
                        clear_placement=True,
                    )
                )
            continue
        if state is None or "pods" not in state.synced:
            continue  # nothing can be known or done about this site's pods right now
        if reachable == "False":
            plan.changes.append(
                StatusChange(
                    key,
                    phase,
                    "SiteReachable",
                    f"site {placement.site} answers again",
                    site_reachable="True",
                )
            )
            continue
        plan_one(
            plan,
            key,
            wl,
            phase,
            cluster,
            placement.site,
            pool.spec.resource_name,
            expected,
            present,
            now,
        )

    for cluster, state in view.clusters.items():
        if not state.connected or "pods" not in state.synced:
            continue
        stray = tuple(
            sorted(
                p.key
                for p in state.pods.values()
                if p.managed
                and p.labels.get(LABEL_ORIGIN) == origin
                and not p.deleting
                and (cluster, p.key) not in keep
            )
        )
        if stray:
            plan.deletes.append(
                PodDelete(cluster=cluster, pods=stray, reason="NotPartOfAnyPlacement")
            )
    return plan


def replica_pods(wl: Workload, placement: Placement) -> dict[str, ReplicaPlacement]:
    """The pod key ("namespace/name") of each replica of a placement: where its pods are
    looked for, created and deleted (`pod_name` makes each name)."""
    name = wl.metadata.name or ""
    return {
        f"{wl.metadata.namespace}/{pod_name(name, placement.epoch, r.index)}": r
        for r in placement.replicas
    }


def _condition_status(wl: Workload, type_: str) -> str | None:
    for cond in (wl.status.conditions if wl.status else None) or []:
        if cond.type == type_:
            return cond.status
    return None


def plan_one(
    plan: LifecyclePlan,
    key: str,
    wl: Workload,
    phase: str,
    cluster: str,
    site: str,
    resource: str,
    expected: dict[str, ReplicaPlacement],
    present: dict[str, PodRecord],
    now: float,
) -> None:
    status = wl.status
    assert status is not None
    assert status.placement is not None
    placement = status.placement
    failed = [p for p in present.values() if p.phase == "Failed"]
    live = tuple(sorted(k for k, p in present.items() if not p.terminal))

    def fail(reason: str, message: str, delete_reason: str) -> None:
        plan.changes.append(StatusChange(key, "Failed", reason, message, finished=True))
        if live:
            plan.deletes.append(PodDelete(cluster, live, delete_reason))

    if failed:
        first = failed[0]
        why = first.reason or "no reason given"
        fail("PodFailed", f"pod {first.name} failed on {first.node}: {why}", "GangMemberFailed")
        return
    max_runtime = wl.spec.max_runtime_seconds
    started = timestamp(status.started_at) if status.started_at else None
    if max_runtime is not None and started is not None and now - started > max_runtime:
        message = f"ran {now - started:.0f}s, more than spec.maxRuntimeSeconds={max_runtime}"
        fail("MaxRuntimeExceeded", message, "MaxRuntimeExceeded")
        return
    if len(present) == len(expected) and all(p.phase == "Succeeded" for p in present.values()):
        plan.changes.append(
            StatusChange(
                key,
                "Succeeded",
                "AllReplicasSucceeded",
                f"all {len(expected)} replicas succeeded",
                finished=True,
            )
        )
        return
    missing = tuple(sorted(r.index for k, r in expected.items() if k not in present))
    if missing:
        nodes = tuple(r.node for r in sorted(placement.replicas, key=lambda r: r.index))
        plan.creates.append(
            PodCreate(key, cluster, site, placement.epoch, nodes, missing, resource)
        )
        return
    if phase == "Admitted" and all(p.phase in ("Running", "Succeeded") for p in present.values()):
        plan.changes.append(
            StatusChange(
                key,
                "Running",
                "AllReplicasRunning",
                f"all {len(expected)} replicas running at {site}",
                started=True,
            )
        )
