"""FIFO with backfill: jobs in arrival order, each on the first (or best) fitting nodes.

No quotas, no fairness, no preemption: the classic baselines of the openb paper.
"""

from __future__ import annotations

from gpufleet.sim.placement import place
from gpufleet.sim.policies.base import ClusterState, Decision, PendingView, Shape


class PackingPolicy:
    def __init__(self, name: str, best_fit: bool) -> None:
        self.name = name
        self.best_fit = best_fit

    def schedule(self, state: ClusterState, pending: PendingView) -> Decision:
        decision = Decision()
        free = state.free.copy()
        fleet = state.fleet
        # Jobs of a shape that failed once in this pass fail again: skip them cheaply.
        failed: set[Shape] = set()
        shapes = sum(1 for count in pending.shapes.values() if count > 0)
        for job in pending.jobs.values():
            if job.shape in failed:
                if len(failed) == shapes:
                    break
                continue
            eligible = fleet.eligible(job.classes, job.residency)
            alloc = place(free, eligible, fleet.node_site, job, self.best_fit)
            if alloc is None:
                failed.add(job.shape)
                continue
            free.take(job, alloc)
            decision.admit.append((job, alloc))
        return decision


def fifo_first_fit() -> PackingPolicy:
    return PackingPolicy("fifo-first-fit", best_fit=False)


def best_fit() -> PackingPolicy:
    return PackingPolicy("best-fit", best_fit=True)
