"""What should happen to workloads that are already placed, read from their pods.

Pure: it looks at a cache view and the translated inputs and returns the
status changes and pod operations to carry out. Running it twice on the same
view gives the same answer, which is why a restart at any moment is safe:
missing pods are created again under the same names, stray pods are removed.
A workload at a silent site is placed again only on evidence that its pods
there are stopped (`fence_evidence`), never on silence alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpufleet.api.v1alpha1 import Condition, Placement, ReplicaPlacement, Site, Workload
from gpufleet.control.handoff import (
    DEFAULT_GRACE_SECONDS,
    NODES_FREE,
    PLACEMENT_REFUSED,
    PODS_HELD,
    WAITING_FOR_NODES,
    grace_seconds,
    held_replicas,
    refusal_message,
    refused_resource,
)
from gpufleet.observed.cache import HUB, CacheView, ClusterState
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
    # Set the Running condition to this status with the reason above.
    running: str | None = None
    # Set another condition: (type, status), with the reason and message above.
    condition: tuple[str, str] | None = None


@dataclass(frozen=True)
class PodCreate:
    workload: str
    cluster: str
    site: str
    epoch: int
    nodes: tuple[str, ...]
    missing: tuple[int, ...]
    resource_name: str
    # The pods' terminationGracePeriodSeconds: the workload's preemption grace period.
    grace_seconds: int = DEFAULT_GRACE_SECONDS


@dataclass(frozen=True)
class PodDelete:
    cluster: str
    pods: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Refusal:
    """A node whose kubelet refused a pod: `resource` it was out of (None: other reasons)."""

    cluster: str
    node: str
    resource: str | None


@dataclass
class LifecyclePlan:
    changes: list[StatusChange] = field(default_factory=list)
    creates: list[PodCreate] = field(default_factory=list)
    deletes: list[PodDelete] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


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
    """The lifecycle of every placed workload, in three steps:

    1. each workload's own pods (by uid), and where it is placed;
    2. by the state of its site: silent (`_silent_site`), back after silence
       (`_site_back`), or answering (`plan_one`, from its pods' phases);
    3. our pods no placement accounts for, in the clusters of Sites in use (`_strays`).
    """
    plan = LifecyclePlan()
    pods_of = _pods_by_workload(view)
    keep: set[tuple[str, str]] = set()  # (cluster, pod key) that belong where they are
    for key, wl in inputs.workload_models.items():
        at = _placed(key, wl, pods_of, inputs, view, keep)  # 1
        if at is None:
            continue
        keep.update((at.cluster, k) for k in at.present)
        reachable = _condition(wl, "SiteReachable")
        if at.state is not None and not at.state.connected:  # 2
            _silent_site(plan, at, inputs, reachable, now, site_loss_after)
        elif at.state is None or "pods" not in at.state.synced:
            continue  # nothing can be known or done about this site's pods right now
        elif reachable is not None and reachable.status == "False":
            _site_back(plan, at, inputs)
        else:
            plan_one(
                plan,
                key,
                wl,
                at.phase,
                at.cluster,
                at.placement.site,
                at.resource,
                at.expected,
                at.present,
                now,
                grace=grace_seconds(wl, inputs.queue_models),
            )
    plan.deletes.extend(_strays(view, inputs, origin, keep))  # 3
    _hold_creates(plan, view, inputs, keep)  # 4
    return plan


def _hold_creates(
    plan: LifecyclePlan, view: CacheView, inputs: Inputs, keep: set[tuple[str, str]]
) -> None:
    """4. The hand-off: pods are created only on nodes nothing on its way out still holds;
    the `PodsHeld` condition says whom a workload waits for, and when it stops waiting."""
    creates = []
    for c in plan.creates:
        wl = inputs.workload_models[c.workload]
        state = view.clusters.get(c.cluster)
        placement = wl.status.placement if wl.status else None
        held = None
        if state is not None and placement is not None:
            own = set(replica_pods(wl, placement))
            kept = {k for cl, k in keep if cl == c.cluster}
            held = held_replicas(state, dict(enumerate(c.nodes)), c.missing, own, kept)
        cond = _condition(wl, PODS_HELD)
        phase = wl.status.phase if wl.status and wl.status.phase else "Admitted"
        if held is not None:
            message = held.message()[:1000]
            if cond is None or (cond.status, cond.reason, cond.message) != (
                "True",
                WAITING_FOR_NODES,
                message,
            ):
                plan.changes.append(
                    StatusChange(
                        c.workload, phase, WAITING_FOR_NODES, message, condition=(PODS_HELD, "True")
                    )
                )
            continue
        creates.append(c)
        if cond is not None and cond.status == "True":
            plan.changes.append(
                StatusChange(
                    c.workload,
                    phase,
                    NODES_FREE,
                    f"the pods that held its nodes are gone; creating its pods on {', '.join(sorted(set(c.nodes)))}",
                    condition=(PODS_HELD, "False"),
                )
            )
    plan.creates = creates


@dataclass(frozen=True)
class _Placed:
    """A workload placed at a site, with what is known of that site and of its pods."""

    key: str
    wl: Workload
    phase: str
    placement: Placement
    cluster: str
    resource: str
    state: ClusterState | None
    expected: dict[str, ReplicaPlacement]
    present: dict[str, PodRecord]


def _placed(
    key: str,
    wl: Workload,
    pods_of: dict[str, list[tuple[str, PodRecord]]],
    inputs: Inputs,
    view: CacheView,
    keep: set[tuple[str, str]],
) -> _Placed | None:
    """Where the workload is placed and which of its pods are there; None for one that is
    not placed (a finished one's finished pods are kept for their logs)."""
    status = wl.status
    phase = status.phase if status and status.phase else "Pending"
    placement = status.placement if status else None
    finished = phase in ("Succeeded", "Failed")
    if not finished and (placement is None or phase not in RUNNING_PHASES):
        return None  # waiting (most workloads of a busy fleet): no pods of its own to find
    mine = [
        (c, p)
        for c, p in pods_of.get(key, [])
        if p.labels.get("gpufleet.io/workload-uid") == wl.metadata.uid
    ]
    if finished:
        # Finished pods stay for their logs; anything still running goes.
        keep.update((c, p.key) for c, p in mine if p.terminal)
        return None
    if placement is None:
        return None
    cluster = inputs.site_cluster.get(placement.site)
    pool = inputs.pool_models.get(placement.pool)
    if cluster is None or pool is None:
        return None
    expected = replica_pods(wl, placement)
    present = {p.key: p for c, p in mine if c == cluster and p.key in expected and not p.deleting}
    return _Placed(
        key,
        wl,
        phase,
        placement,
        cluster,
        pool.spec.resource_name,
        view.clusters.get(cluster),
        expected,
        present,
    )


# The SiteReachable reasons of a workload whose site is silent.
UNREACHABLE = "SiteUnreachable"  # silent; the workload stays where it is
FENCE_UNCONFIRMED = "FenceUnconfirmed"  # would move, but nothing says its pods stopped


def fence_evidence(site: Site | None, state: ClusterState, placement: Placement) -> str | None:
    """What says the pods of `placement` are stopped at its silent site, or None.

    A workload is placed elsewhere only on evidence, never on silence alone: silence cannot
    tell a cut link (the pods run on) from a dead site. Evidence is the member's own agent
    confirming its fence (read back by the operator), or a declaration on the Site by a
    person (`gpufleet site declare-lost`) or a configured external fence, made after the
    placement was admitted.
    """
    admitted = timestamp(placement.admitted_at)
    confirmed = state.fence_confirmed_at
    if confirmed is not None and confirmed >= admitted and state.fence_record is not None:
        return (
            f"the site's fence agent stopped gpufleet's pods there at"
            f" {state.fence_record.fenced_at}"
        )
    declared = site.spec.loss_declaration if site is not None else None
    if declared is not None and declared.at.timestamp() >= admitted:
        how = "declared lost" if declared.method == "Manual" else "fenced externally"
        why = f" ({declared.reason})" if declared.reason else ""
        return f"the site was {how} by {declared.by} at {declared.at.isoformat()}{why}"
    return None


def _silent_site(
    plan: LifecyclePlan,
    at: _Placed,
    inputs: Inputs,
    reachable: Condition | None,
    now: float,
    site_loss_after: float,
) -> None:
    """A workload whose site does not answer: say so; move it only on evidence."""
    if at.state is None:  # the caller passes only workloads whose cluster it knows
        return
    site = at.placement.site
    wl = at.wl
    if reachable is None or reachable.status != "False":
        then = (
            "the workload waits for it (onSiteLoss: Wait)"
            if wl.spec.on_site_loss == "Wait"
            else "the workload is placed again once its pods there are known stopped"
        )
        plan.changes.append(
            StatusChange(
                at.key,
                at.phase,
                UNREACHABLE,
                f"site {site} does not answer ({at.state.reason}); {then}",
                site_reachable="False",
            )
        )
        return
    if wl.spec.on_site_loss != "Requeue":
        return
    evidence = fence_evidence(inputs.site_models.get(site), at.state, at.placement)
    if evidence is not None:
        plan.changes.append(
            StatusChange(
                at.key,
                "Pending",
                "SiteLost",
                f"site {site} unreachable and {evidence}; placing the workload again",
                clear_placement=True,
            )
        )
        return
    silent = now - at.state.lease_renewed_at
    if silent > site_loss_after and reachable.reason != FENCE_UNCONFIRMED:
        plan.changes.append(
            StatusChange(
                at.key,
                at.phase,
                FENCE_UNCONFIRMED,
                f"site {site} silent for {silent:.0f}s, but nothing confirms its pods stopped"
                f" (its fence agent cannot be read); the workload waits until the site"
                f" answers, or `gpufleet site declare-lost {site}` records that they did",
                site_reachable="False",
            )
        )


def _site_back(plan: LifecyclePlan, at: _Placed, inputs: Inputs) -> None:
    """The site answers again. If its agent fenced meanwhile, a `Requeue` workload's pods
    are gone: it is placed again (anywhere); otherwise the condition clears and its pods,
    if they went, are created again at the same epoch."""
    if at.state is None:  # the caller passes only workloads whose cluster it knows
        return
    site = at.placement.site
    if at.wl.spec.on_site_loss == "Requeue":
        evidence = fence_evidence(inputs.site_models.get(site), at.state, at.placement)
        if evidence is not None:
            plan.changes.append(
                StatusChange(
                    at.key,
                    "Pending",
                    "SiteLost",
                    f"site {site} answers again, but {evidence}; placing the workload again",
                    clear_placement=True,
                    site_reachable="True",
                )
            )
            return
    plan.changes.append(
        StatusChange(
            at.key,
            at.phase,
            "SiteReachable",
            f"site {site} answers again",
            site_reachable="True",
        )
    )


def _strays(
    view: CacheView, inputs: Inputs, origin: str, keep: set[tuple[str, str]]
) -> list[PodDelete]:
    """Our pods that no current placement accounts for, in the hub and in the clusters of
    the Sites in use. A Site set aside (a second Site on a claimed cluster) sweeps nothing:
    its sweep would delete the pods the first Site's placements keep."""
    in_use = set(inputs.site_cluster.values()) | {HUB}
    out = []
    for cluster, state in sorted(view.clusters.items()):
        if cluster not in in_use or not state.connected or "pods" not in state.synced:
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
            out.append(PodDelete(cluster=cluster, pods=stray, reason="NotPartOfAnyPlacement"))
    return out


def replica_pods(wl: Workload, placement: Placement) -> dict[str, ReplicaPlacement]:
    """The pod key ("namespace/name") of each replica of a placement: where its pods are
    looked for, created and deleted (`pod_name` makes each name)."""
    name = wl.metadata.name or ""
    return {
        f"{wl.metadata.namespace}/{pod_name(name, placement.epoch, r.index)}": r
        for r in placement.replicas
    }


def _condition(wl: Workload, type_: str) -> Condition | None:
    for cond in (wl.status.conditions if wl.status else None) or []:
        if cond.type == type_:
            return cond
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
    grace: int = DEFAULT_GRACE_SECONDS,
) -> None:
    status = wl.status
    if status is None or status.placement is None:  # plan_lifecycle passes placed ones only
        return
    placement = status.placement
    failed = [p for p in present.values() if p.phase == "Failed"]
    live = tuple(sorted(k for k, p in present.items() if not p.terminal))

    def fail(reason: str, message: str, delete_reason: str) -> None:
        plan.changes.append(StatusChange(key, "Failed", reason, message, finished=True))
        if live:
            plan.deletes.append(PodDelete(cluster, live, delete_reason))

    refused = [p for p in failed if p.refused]
    if refused:
        # The kubelet would not take the pod: the placement failed, not the workload.
        first = refused[0]
        plan.changes.append(
            StatusChange(
                key,
                "Pending",
                PLACEMENT_REFUSED,
                refusal_message(first, site),
                clear_placement=True,
            )
        )
        if first.node is not None:
            plan.refusals.append(Refusal(cluster, first.node, refused_resource(first.reason or "")))
        if live:
            plan.deletes.append(PodDelete(cluster, live, PLACEMENT_REFUSED))
        return
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
            PodCreate(key, cluster, site, placement.epoch, nodes, missing, resource, grace)
        )
        if phase == "Running":
            # Its pods were running and some went (a fence, a person, a node): they come
            # back at the same epoch, and the workload says so instead of claiming Running.
            replicas = ", ".join(str(i) for i in missing)
            plan.changes.append(
                StatusChange(
                    key,
                    "Admitted",
                    "PodsRecreated",
                    f"replica(s) {replicas} of epoch {placement.epoch} were gone from {site};"
                    " created again",
                    running="False",
                )
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
