"""gpufleet's own policy: the very core the operator runs, fed from the simulator's state.

Every cycle builds a `gpufleet.core.Snapshot` from the fleet, the queues and the jobs
(running ones with their placement) and applies what `gpufleet.core.schedule` decides.
Core objects are built once per node, pool, site and job and reused across cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gpufleet import core
from gpufleet.core import fairness
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


@dataclass(frozen=True, slots=True)
class FairnessSettings:
    """The queues' time-based settings; the defaults are the API's (gpufleet.core.fairness)."""

    half_life_seconds: float = fairness.USAGE_HALF_LIFE_SECONDS
    present_weight_seconds: float = fairness.PRESENT_WEIGHT_SECONDS
    wait_credit_seconds: float = fairness.WAIT_CREDIT_SECONDS
    max_wait_seconds: float = fairness.MAX_WAIT_SECONDS
    min_runtime_seconds: float = fairness.MIN_RUNTIME_SECONDS
    max_evictions: int | None = fairness.MAX_EVICTIONS
    eviction_window_seconds: float = fairness.EVICTION_WINDOW_SECONDS
    reclaim_delay_seconds: float = fairness.RECLAIM_DELAY_SECONDS
    reclaim_margin: float = fairness.RECLAIM_MARGIN


class GpufleetPolicy:
    """Adapter from the simulator to `gpufleet.core`.

    It keeps, across cycles, the state the operator keeps in Queue and Workload status:
    each queue's decayed usage and decayed fair share per class, since when each queue
    has been starved, and when each job was evicted.

    `min_runtime_seconds`: how long a workload runs before the core may preempt it (the
    Queue field of the same name); None takes `settings.min_runtime_seconds`.

    `class_blind`: show every pool as one class. The core keeps quotas and fair shares
    per accelerator class and counts a pending job's demand against its first acceptable
    class, so for a trace where every job takes any GPU (openb's default list) the honest
    model is one class; otherwise the demand of "any" jobs would all land on one model.
    """

    name = "gpufleet"

    def __init__(
        self,
        class_blind: bool = False,
        min_runtime_seconds: float | None = None,
        settings: FairnessSettings | None = None,
    ) -> None:
        self.class_blind = class_blind
        self.settings = settings or FairnessSettings()
        if min_runtime_seconds is not None:
            self.settings = replace(self.settings, min_runtime_seconds=min_runtime_seconds)
        self.min_runtime_seconds = self.settings.min_runtime_seconds
        self._static: _Static | None = None
        self._static_for: tuple[int, tuple[QueueSpec, ...]] | None = None
        self._pending: dict[int, core.Workload] = {}
        self._running: dict[int, core.Workload] = {}
        # State across cycles (what the operator persists in status).
        self._usage: dict[str, dict[str, float]] = {}
        self._fair_usage: dict[str, dict[str, float]] = {}
        self._last: tuple[float, dict[str, dict[str, int]], dict[str, dict[str, float]]] | None
        self._last = None
        self._starved_since: dict[str, float] = {}
        self._evicted_at: dict[int, tuple[float, ...]] = {}

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
        # A node that does not say its CPU or memory offers the fleet's UNLIMITED.
        nodes = tuple(
            core.Node(
                n.name,
                fleet.pools[n.pool].name,
                n.gpus,
                cpu_millis=int(cpu),
                memory_bytes=int(mem) * 2**20,
                pods=n.pods,
            )
            for n, cpu, mem in zip(
                fleet.nodes, fleet.cpu_capacity, fleet.memory_capacity, strict=True
            )
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
                min_runtime_seconds=self.settings.min_runtime_seconds,
                present_weight_seconds=self.settings.present_weight_seconds,
                wait_credit_seconds=self.settings.wait_credit_seconds,
                max_wait_seconds=self.settings.max_wait_seconds,
                reclaim_delay_seconds=self.settings.reclaim_delay_seconds,
                reclaim_margin=self.settings.reclaim_margin,
                max_evictions=self.settings.max_evictions,
                eviction_window_seconds=self.settings.eviction_window_seconds,
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
        self._usage.clear()
        self._fair_usage.clear()
        self._last = None
        self._starved_since.clear()
        self._evicted_at.clear()
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
            cpu_millis_per_replica=job.cpu_milli,
            memory_bytes_per_replica=job.memory_mib * 2**20,
            accelerator_classes=classes,
            created_at=job.arrival,
            residency=core.Residency(jurisdictions=job.residency, regions=job.residency),
            placement=placement,
            eviction_times=self._evicted_at.get(job.id, ()),
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
        self._account(state, static)
        snapshot = core.Snapshot.build(
            static.sites,
            static.pools,
            static.nodes,
            self._queues(static),
            [*running.values(), *waiting],
            state.now,
        )
        result = core.schedule(snapshot)
        self._remember(state.now, result)
        decision = Decision(evict=[int(e.workload) for e in result.evictions])
        for admission in result.admissions:
            job = pending.jobs[int(admission.workload)]
            alloc: Allocation = tuple(
                (static.node_index[name], job.per_replica) for name in admission.nodes
            )
            decision.admit.append((job, alloc))
            self._pending.pop(job.id, None)
        return decision

    # -- state across cycles ----------------------------------------------------------

    def _account(self, state: ClusterState, static: _Static) -> None:
        """Bring decayed usage and fair usage up to `state.now`: since the last cycle each
        queue held, on average, what it held after that cycle and what it holds now."""
        now_alloc: dict[str, dict[str, int]] = {}
        for run in state.running.values():
            cls = self._cls(
                state.fleet.pools[state.fleet.nodes[run.alloc[0][0]].pool].accelerator_class
            )
            per_queue = now_alloc.setdefault(run.job.queue, {})
            per_queue[cls] = per_queue.get(cls, 0) + run.job.gpus
        if self._last is not None:
            then, after, fair = self._last
            elapsed = state.now - then
            half_life = self.settings.half_life_seconds
            for queue in static.queues:
                name = queue.name
                usage = self._usage.setdefault(name, {})
                fair_usage = self._fair_usage.setdefault(name, {})
                classes = set(after.get(name, {})) | set(now_alloc.get(name, {}))
                classes |= set(fair.get(name, {})) | set(usage)
                for cls in classes:
                    held = (
                        after.get(name, {}).get(cls, 0) + now_alloc.get(name, {}).get(cls, 0)
                    ) / 2
                    usage[cls] = fairness.accumulate(usage.get(cls, 0.0), held, elapsed, half_life)
                    fair_usage[cls] = fairness.accumulate(
                        fair_usage.get(cls, 0.0),
                        fair.get(name, {}).get(cls, 0.0),
                        elapsed,
                        half_life,
                    )

    def _queues(self, static: _Static) -> tuple[core.Queue, ...]:
        return tuple(
            replace(
                q,
                usage=dict(self._usage.get(q.name, {})),
                fair_usage=dict(self._fair_usage.get(q.name, {})),
                starved_since=self._starved_since.get(q.name),
            )
            for q in static.queues
        )

    def _remember(self, now: float, result: core.CycleResult) -> None:
        for eviction in result.evictions:
            job_id = int(eviction.workload)
            self._evicted_at[job_id] = (*self._evicted_at.get(job_id, ()), now)
        for name in list(self._starved_since):
            if name not in result.starved:
                del self._starved_since[name]
        for name in result.starved:
            self._starved_since.setdefault(name, now)
        self._last = (now, result.allocated, result.fair_shares)
