"""A Kueue-like policy: one ClusterQueue per queue, all in one cohort.

Admission is by quota only, as in Kueue: each queue has a nominal quota (its share of
all GPUs) and admits in strict FIFO order (a head that does not fit the quota blocks
its queue); a queue may borrow what the cohort leaves unused; heads within nominal
quota go before borrowers, then by age. A queue whose head fits its own nominal quota
reclaims borrowed quota, newest admitted first, from queues above nominal
(`reclaimWithinCohort: Any`). Admitted workloads then wait for nodes, as pods wait for
kube-scheduler: they hold quota while pending, and each cycle they are placed first-fit
(a kube-scheduler set to pack, with gang scheduling) in admission order, any that fits.
Quota is counted in GPUs of any class (one flavour).
"""

from __future__ import annotations

from collections.abc import Iterator

from gpufleet.sim.jobs import Job
from gpufleet.sim.placement import Allocation, Free, place
from gpufleet.sim.policies.base import ClusterState, Decision, PendingView

# Stop widening a reclaim after this many victims: it bounds the cost of a cycle, and
# an eviction set that large for one head is not one an operator would accept either.
MAX_VICTIMS = 64
_EPS = 1e-9


class KueueLikePolicy:
    name = "kueue-like"

    def __init__(self) -> None:
        # Admitted (quota reserved) but not yet on nodes, in admission order.
        self._admitted: dict[int, Job] = {}

    def schedule(self, state: ClusterState, pending: PendingView) -> Decision:
        fleet = state.fleet
        capacity = fleet.total_gpus
        nominal = {q.name: q.share * capacity for q in state.queues}
        used = {q.name: state.queue_used.get(q.name, 0) for q in state.queues}
        for job in self._admitted.values():
            used[job.queue] += job.gpus
        free = state.free.copy()
        decision = Decision()
        self._bind(state, free, decision)
        # Jobs bound just now stay pending for the engine until this decision is applied.
        taken = {job.id for job, _ in decision.admit}
        # Lazily walk each queue in arrival order: only heads are ever looked at.
        walkers: dict[str, Iterator[Job]] = {
            q.name: (
                j
                for j in pending.by_queue.get(q.name, {}).values()
                if j.id not in self._admitted and j.id not in taken
            )
            for q in state.queues
        }
        heads: dict[str, Job] = {}
        for name, walker in walkers.items():
            head = next(walker, None)
            if head is not None:
                heads[name] = head
        blocked: set[str] = set()
        while True:
            ready = [q for q in heads if q not in blocked]
            if not ready:
                return decision
            queue = min(
                ready,
                key=lambda q: (
                    used[q] + heads[q].gpus > nominal[q] + _EPS,
                    heads[q].arrival,
                    heads[q].id,
                ),
            )
            job = heads[queue]
            if sum(used.values()) + job.gpus > capacity and not (
                used[queue] + job.gpus <= nominal[queue] + _EPS
                and self._reclaim(state, job, used, nominal, free, decision)
            ):
                blocked.add(queue)
                continue
            used[queue] += job.gpus
            eligible = fleet.eligible(job.classes, job.residency)
            alloc = place(free, eligible, fleet.node_site, job)
            if alloc is None:
                self._admitted[job.id] = job
            else:
                self._start(job, alloc, free, decision)
            following = next(walkers[queue], None)
            if following is None:
                del heads[queue]
            else:
                heads[queue] = following

    def _start(self, job: Job, alloc: Allocation, free: Free, decision: Decision) -> None:
        free.take(job, alloc)
        decision.admit.append((job, alloc))

    def _bind(self, state: ClusterState, free: Free, decision: Decision) -> None:
        """Place admitted workloads whose gang fits now (the scheduler's part)."""
        fleet = state.fleet
        for job_id, job in list(self._admitted.items()):
            eligible = fleet.eligible(job.classes, job.residency)
            alloc = place(free, eligible, fleet.node_site, job)
            if alloc is not None:
                del self._admitted[job_id]
                self._start(job, alloc, free, decision)

    def _reclaim(
        self,
        state: ClusterState,
        job: Job,
        used: dict[str, int],
        nominal: dict[str, float],
        free: Free,
        decision: Decision,
    ) -> bool:
        """Take back quota from borrowers' newest workloads until `job` fits; all or nothing."""
        capacity = state.fleet.total_gpus
        trial = dict(used)
        unadmit: list[int] = []
        evict: list[int] = []
        candidates = [
            *((j, None) for j in reversed(self._admitted.values())),
            *((state.running[i].job, state.running[i]) for i in reversed(state.running)),
        ]
        for victim, run in candidates:
            if len(unadmit) + len(evict) >= MAX_VICTIMS:
                return False
            owner = victim.queue
            if owner == job.queue or trial[owner] <= nominal[owner] + _EPS:
                continue
            if victim.id in decision.evict:
                continue
            (unadmit if run is None else evict).append(victim.id)
            trial[owner] -= victim.gpus
            if sum(trial.values()) + job.gpus <= capacity:
                break
        else:
            return False
        used.update(trial)
        for job_id in unadmit:
            del self._admitted[job_id]
        for job_id in evict:
            run = state.running[job_id]
            free.take(run.job, run.alloc, sign=-1)
        decision.evict.extend(evict)
        return True
