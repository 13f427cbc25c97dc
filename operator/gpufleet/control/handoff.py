"""The preemption hand-off: victims stop gracefully, the preemptor waits for their nodes.

Pure. A real kubelet admits a pod bound to its node only if the node's
allocatable covers every non-terminated pod on it, and a Terminating pod keeps
its resources until it is gone. So:

- a victim's pods are deleted with its grace period (`grace_seconds`: the
  Workload's, else the nearest one up its Queue's tree, else 30 s), and every
  pod gpufleet creates carries it as `terminationGracePeriodSeconds`, so that any
  later delete of the same pod (the stray sweep) does not cut it short;
- the preemptor is admitted and recorded at once, so its nodes stay reserved in
  the core (its placement counts there, beside the victims' pods still holding
  them), but its pods are created only once nothing that is on its way out still
  holds those nodes (`held_replicas`); meanwhile its `PodsHeld` condition names
  whom it waits for;
- a pod the kubelet refuses anyway is a failed placement, not a failed workload
  (`refusal_message`): the workload is placed again, and the node's refused
  resource is taken as exhausted for `REFUSAL_HOLD_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gpufleet.api.v1alpha1 import Queue, Workload
from gpufleet.observed.cache import ClusterState
from gpufleet.observed.records import PodRecord

DEFAULT_GRACE_SECONDS = 30
# How long a node that refused a pod is taken at its word (see `refused_resource`).
REFUSAL_HOLD_SECONDS = 60.0

PODS_HELD = "PodsHeld"  # the condition of a preemptor whose pods wait for its nodes
WAITING_FOR_NODES = "WaitingForNodes"
NODES_FREE = "NodesFree"
PLACEMENT_REFUSED = "PlacementRefused"


def grace_seconds(wl: Workload, queues: Mapping[str, Queue]) -> int:
    """The workload's preemption grace period: its own, else inherited down its queue tree."""
    own = wl.spec.preemption_grace_period_seconds
    if own is not None:
        return own
    at: str | None = wl.spec.queue
    seen: set[str] = set()
    while at is not None and at in queues and at not in seen:
        seen.add(at)
        spec = queues[at].spec
        if spec.preemption is not None and spec.preemption.grace_period_seconds is not None:
            return spec.preemption.grace_period_seconds
        at = spec.parent
    return DEFAULT_GRACE_SECONDS


@dataclass(frozen=True)
class Held:
    """Replicas whose pods may not be created yet, and the pods they wait for."""

    replicas: tuple[int, ...]
    waits_for: tuple[PodRecord, ...]

    def message(self) -> str:
        by: dict[str, list[str]] = {}
        for p in self.waits_for:
            who = p.workload_key if p.managed and p.workload_key else f"pod {p.key}"
            by.setdefault(who, []).append(f"{p.name} on {p.node}")
        parts = [f"{who} ({', '.join(sorted(pods))})" for who, pods in sorted(by.items())]
        return "waiting for the pods of " + "; ".join(parts) + " to terminate"


def held_replicas(
    state: ClusterState,
    nodes: Mapping[int, str],
    missing: Iterable[int],
    own_pods: set[str],
    kept: set[str],
) -> Held | None:
    """Which of the `missing` replicas (index -> node) must wait, or None when none must.

    A replica waits while its node holds a pod on its way out: one being deleted
    (Terminating), or one of gpufleet's that no current placement keeps (`kept`: a victim
    whose deletion this view has not seen yet, a stray the sweep is about to delete).
    Other schedulers' pods that stay are not waited for: the core already counted them.
    """
    by_node: dict[str, list[PodRecord]] = {}
    for pod in state.pods.values():
        if pod.node is None or pod.key in own_pods:
            continue
        if pod.terminal and not pod.deleting:
            continue  # finished and kept for its logs: it holds nothing
        # A Terminating pod waits even once its phase is final: the kubelet has let go of it,
        # but it is not gone until its object is (the hand-off promises "gone").
        leaving = pod.deleting or (pod.managed and pod.key not in kept)
        if leaving:
            by_node.setdefault(pod.node, []).append(pod)
    held = tuple(i for i in sorted(missing) if by_node.get(nodes[i]))
    if not held:
        return None
    # By key: a node shared by two replicas lists its pods once.
    unique = {p.key: p for i in held for p in by_node[nodes[i]]}
    waits = tuple(sorted(unique.values(), key=lambda p: (p.node or "", p.key)))
    return Held(held, waits)


def refused_resource(reason: str) -> str | None:
    """The resource an `OutOf<resource>` refusal names, or None for other refusals."""
    return reason[len("OutOf") :] or None if reason.startswith("OutOf") else None


def refusal_message(pod: PodRecord, site: str) -> str:
    why = pod.reason or "refused"
    detail = f": {pod.message}" if pod.message else ""
    return (
        f"the kubelet of node {pod.node} at {site} refused pod {pod.name} ({why}{detail});"
        " a failed placement, not a failure of the workload: it is placed again"
    )
