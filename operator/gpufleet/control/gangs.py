"""Which gangs need their headless Service, and owned by which pods (pure).

A Service is owned by the pods of its dispatch (sites/gang.py), so it can be
made only once they exist: the loop asks for it when the cache shows every
replica's pod of a placed multi-replica workload, and again whenever that set of
pods changes (a pod recreated at the same epoch has a new uid).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpufleet.control.lifecycle import replica_pods
from gpufleet.observed.cache import CacheView
from gpufleet.observed.records import LABEL_WORKLOAD_UID
from gpufleet.observed.translate import RUNNING_PHASES, Inputs


@dataclass(frozen=True)
class GangService:
    cluster: str
    namespace: str
    workload: str  # its name
    uid: str
    epoch: int
    owners: frozenset[tuple[str, str]]  # (pod name, pod uid)


def gang_services(view: CacheView, inputs: Inputs) -> dict[tuple[str, str, int], GangService]:
    """(cluster, workload key, epoch) -> the Service its pods need, for every placed
    workload of two replicas or more whose pods all exist."""
    out = {}
    for key, wl in inputs.workload_models.items():
        status = wl.status
        placement = status.placement if status else None
        if status is None or placement is None or status.phase not in RUNNING_PHASES:
            continue
        if len(placement.replicas) < 2:
            continue
        cluster = inputs.site_cluster.get(placement.site)
        state = view.clusters.get(cluster) if cluster is not None else None
        if cluster is None or state is None:
            continue
        pods = [state.pods.get(k) for k in replica_pods(wl, placement)]
        if not all(
            p is not None and not p.deleting and p.labels.get(LABEL_WORKLOAD_UID) == wl.metadata.uid
            for p in pods
        ):
            continue
        out[(cluster, key, placement.epoch)] = GangService(
            cluster=cluster,
            namespace=wl.metadata.namespace or "",
            workload=wl.metadata.name or "",
            uid=wl.metadata.uid or "",
            epoch=placement.epoch,
            owners=frozenset((p.name, p.uid) for p in pods if p is not None),
        )
    return out
