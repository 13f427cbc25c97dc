"""A Kueue-like policy: one ClusterQueue per queue, all in one cohort.

Each queue has a nominal quota (its share of all GPUs) and admits in strict FIFO order:
a head that cannot be admitted blocks its queue. A queue may borrow whatever quota the
cohort leaves unused. A queue whose head fits within its own nominal quota reclaims
borrowed quota by evicting the most recently admitted workloads of queues that are
above their nominal quota (Kueue's `reclaimWithinCohort: Any`). Quota is counted in
GPUs of any class (one flavour); nodes are chosen first-fit, standing in for a
kube-scheduler configured to pack.
"""

from __future__ import annotations

from collections.abc import Iterator

from gpufleet.sim.fleet import IntArray
from gpufleet.sim.jobs import Job
from gpufleet.sim.placement import Allocation, place
from gpufleet.sim.policies.base import ClusterState, Decision, PendingView

# Stop widening a reclaim after this many victims: Kueue, too, gives up on a head
# that no reasonable eviction set would let in, and it bounds the cost of a cycle.
MAX_VICTIMS = 64
_EPS = 1e-9


class KueueLikePolicy:
    name = "kueue-like"

    def schedule(self, state: ClusterState, pending: PendingView) -> Decision:
        fleet = state.fleet
        capacity = fleet.total_gpus
        nominal = {q.name: q.share * capacity for q in state.queues}
        used = {q.name: state.queue_used.get(q.name, 0) for q in state.queues}
        free = state.free.copy()
        # Lazily walk each queue in arrival order: only heads are ever looked at.
        walkers: dict[str, Iterator[Job]] = {
            q.name: iter(pending.by_queue.get(q.name, {}).values()) for q in state.queues
        }
        heads: dict[str, Job] = {}
        for name, walker in walkers.items():
            head = next(walker, None)
            if head is not None:
                heads[name] = head
        decision = Decision()
        evicted: set[int] = set()
        blocked: set[str] = set()
        while True:
            ready = [q for q in heads if q not in blocked]
            if not ready:
                return decision
            # Kueue tries heads that stay within nominal quota before borrowers, then by age.
            queue = min(
                ready,
                key=lambda q: (
                    used[q] + heads[q].gpus > nominal[q] + _EPS,
                    heads[q].arrival,
                    heads[q].id,
                ),
            )
            job = heads[queue]
            eligible = fleet.eligible(job.classes, job.residency)
            alloc: Allocation | None = None
            if sum(used.values()) + job.gpus <= capacity:
                alloc = place(free, eligible, fleet.node_site, job.replicas, job.per_replica)
            elif used[queue] + job.gpus <= nominal[queue] + _EPS:
                alloc = self._reclaim(state, job, used, nominal, free, evicted, decision)
            if alloc is None:
                blocked.add(queue)
                continue
            for node, count in alloc:
                free[node] -= count
            used[queue] += job.gpus
            decision.admit.append((job, alloc))
            following = next(walkers[queue], None)
            if following is None:
                del heads[queue]
            else:
                heads[queue] = following

    def _reclaim(
        self,
        state: ClusterState,
        job: Job,
        used: dict[str, int],
        nominal: dict[str, float],
        free: IntArray,
        evicted: set[int],
        decision: Decision,
    ) -> Allocation | None:
        """Evict borrowers' newest workloads until `job` fits quota and nodes; all or nothing."""
        fleet = state.fleet
        capacity = fleet.total_gpus
        trial_used = dict(used)
        trial_free = free.copy()
        victims: list[int] = []
        eligible = fleet.eligible(job.classes, job.residency)
        for job_id in reversed(state.running):
            if len(victims) >= MAX_VICTIMS:
                return None
            run = state.running[job_id]
            owner = run.job.queue
            if job_id in evicted or owner == job.queue:
                continue
            if trial_used[owner] <= nominal[owner] + _EPS:
                continue
            victims.append(job_id)
            trial_used[owner] -= run.job.gpus
            for node, count in run.alloc:
                trial_free[node] += count
            if sum(trial_used.values()) + job.gpus > capacity:
                continue
            alloc = place(trial_free, eligible, fleet.node_site, job.replicas, job.per_replica)
            if alloc is None:
                continue
            used.update(trial_used)
            free[:] = trial_free
            evicted.update(victims)
            decision.evict.extend(victims)
            return alloc
        return None
