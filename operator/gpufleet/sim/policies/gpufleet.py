"""gpufleet's own policy: the very core the operator runs, fed from the simulator's state.

Every cycle builds a `gpufleet.core.Snapshot` from the fleet, the queues and the jobs
(running ones with their placement) and applies what `gpufleet.core.schedule` decides.
Core objects are built once per node, pool, site and job and reused across cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpufleet import core
from gpufleet.sim.fleet import SimFleet
from gpufleet.sim.jobs import Job
from gpufleet.sim.placement import Allocation
from gpufleet.sim.policies.base import ClusterState, Decision, PendingView, Running
from gpufleet.sim.tenants import QueueSpec

ANY_CLASS = "any-gpu"
"""The one class every pool is shown as when no job of the trace names a class."""


@dataclass(frozen=True, slots=True)
class _Static:
    sites: tuple[core.Site, ...]
    pools: tuple[core.Pool, ...]
    nodes: tuple[core.Node, ...]
    queues: tuple[core.Queue, ...]
    node_index: dict[str, int]
    pool_of_node: tuple[str, ...]
    site_of_pool: dict[str, str]
    classes: tuple[str, ...]  # acceptable classes of an "any" job, largest capacity first


class GpufleetPolicy:
    """Adapter from the simulator to `gpufleet.core`.

    `min_runtime_seconds`: how long a workload runs before the core may preempt it (the
    Queue field of the same name), to trade some fairness for less lost work.

    `class_blind`: show every pool as one class. The core keeps quotas and fair shares
    per accelerator class and counts a pending job's demand against its first acceptable
    class, so for a trace where every job takes any GPU (openb's default list) the honest
    model is one class; otherwise the demand of "any" jobs would all land on one model.
    """

    name = "gpufleet"

    def __init__(self, class_blind: bool = False, min_runtime_seconds: float = 0.0) -> None:
        self.class_blind = class_blind
        self.min_runtime_seconds = min_runtime_seconds
        self._static: _Static | None = None
        self._static_for: tuple[int, tuple[QueueSpec, ...]] | None = None
        self._pending: dict[int, core.Workload] = {}
        self._running: dict[int, core.Workload] = {}

    def _cls(self, cls: str) -> str:
        return ANY_CLASS if self.class_blind else cls

    def _prepare(self, fleet: SimFleet, queues: tuple[QueueSpec, ...]) -> _Static:
        key = (id(fleet), queues)
        if self._static is not None and self._static_for == key:
            return self._static
        sites = tuple(
            core.Site(s.name, s.jurisdiction, s.regions, s.certifications) for s in fleet.sites
        )
        pools = tuple(
            core.Pool(p.name, fleet.sites[p.site].name, self._cls(p.accelerator_class))
            for p in fleet.pools
        )
        nodes = tuple(
            core.Node(
                n.name,
                fleet.pools[n.pool].name,
                n.gpus,
                cpu_millis=max(n.cpu_milli, 1),
                memory_bytes=max(n.memory_mib, 1) * 2**20,
                pods=n.pods,
            )
            for n in fleet.nodes
        )
        by_class: dict[str, int] = {}
        for node in fleet.nodes:
            cls = self._cls(fleet.pools[node.pool].accelerator_class)
            by_class[cls] = by_class.get(cls, 0) + node.gpus
        core_queues = tuple(
            core.Queue(
                q.name,
                deserved={c: int(q.share * cap) for c, cap in by_class.items()},
                over_quota_weight=dict.fromkeys(by_class, q.share),
                min_runtime_seconds=self.min_runtime_seconds,
            )
            for q in queues
        )
        self._static = _Static(
            sites=sites,
            pools=pools,
            nodes=nodes,
            queues=core_queues,
            node_index={n.name: i for i, n in enumerate(fleet.nodes)},
            pool_of_node=tuple(fleet.pools[n.pool].name for n in fleet.nodes),
            site_of_pool={p.name: fleet.sites[p.site].name for p in fleet.pools},
            classes=tuple(sorted(by_class, key=lambda c: (-by_class[c], c))),
        )
        self._static_for = key
        self._pending.clear()
        self._running.clear()
        return self._static

    def _workload(
        self, job: Job, static: _Static, placement: core.Placement | None
    ) -> core.Workload:
        if self.class_blind or not job.classes:
            classes = static.classes
        else:
            classes = tuple(c for c in static.classes if c in job.classes) or tuple(
                sorted(job.classes)
            )
        return core.Workload(
            key=str(job.id),
            queue=job.queue,
            replicas=job.replicas,
            min_replicas=job.replicas,
            accelerators_per_replica=job.per_replica,
            accelerator_classes=classes,
            created_at=job.arrival,
            residency=core.Residency(jurisdictions=job.residency, regions=job.residency),
            placement=placement,
        )

    def _running_workload(self, run: Running, static: _Static) -> core.Workload:
        cached = self._running.get(run.job.id)
        placed = cached.placement if cached is not None else None
        if cached is not None and placed is not None and placed.started_at == run.start:
            return cached
        fleet_nodes = static.nodes
        names = tuple(fleet_nodes[node].name for node, _ in run.alloc)
        pool = static.pool_of_node[run.alloc[0][0]]
        placement = core.Placement(static.site_of_pool[pool], pool, names, started_at=run.start)
        return self._workload(run.job, static, placement)

    def schedule(self, state: ClusterState, pending: PendingView) -> Decision:
        static = self._prepare(state.fleet, state.queues)
        running = {
            job_id: self._running_workload(run, static) for job_id, run in state.running.items()
        }
        self._running = running
        waiting: list[core.Workload] = []
        for job in pending.jobs.values():
            wl = self._pending.get(job.id)
            if wl is None:
                wl = self._pending[job.id] = self._workload(job, static, None)
            waiting.append(wl)
        snapshot = core.Snapshot.build(
            static.sites,
            static.pools,
            static.nodes,
            static.queues,
            [*running.values(), *waiting],
            state.now,
        )
        result = core.schedule(snapshot)
        decision = Decision(evict=[int(e.workload) for e in result.evictions])
        for admission in result.admissions:
            job = pending.jobs[int(admission.workload)]
            alloc: Allocation = tuple(
                (static.node_index[name], job.per_replica) for name in admission.nodes
            )
            decision.admit.append((job, alloc))
            self._pending.pop(job.id, None)
        return decision
