"""Node-exact gang placement heuristics used by the baseline policies.

A gang lands whole on one site or not at all; each replica on one node, where its
accelerators, CPU and memory must all fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpufleet.sim.fleet import BoolArray, IntArray, SimFleet
from gpufleet.sim.jobs import Job

Allocation = tuple[tuple[int, int], ...]
"""(node index, accelerators) pairs of one placed job."""


@dataclass(frozen=True, slots=True)
class Free:
    """What each node has left: accelerators, millicores, MiB (one array each)."""

    gpus: IntArray
    cpu: IntArray
    memory: IntArray

    @classmethod
    def of(cls, fleet: SimFleet) -> Free:
        """An empty fleet's free resources (copies: the caller may change them)."""
        return cls(fleet.capacity.copy(), fleet.cpu_capacity.copy(), fleet.memory_capacity.copy())

    def copy(self) -> Free:
        return Free(self.gpus.copy(), self.cpu.copy(), self.memory.copy())

    def take(self, job: Job, alloc: Allocation, sign: int = 1) -> None:
        """Claim (sign 1) or give back (sign -1) what `job` holds under `alloc`."""
        for node, count in alloc:
            self.gpus[node] -= sign * count
            self.cpu[node] -= sign * job.cpu_milli
            self.memory[node] -= sign * job.memory_mib

    def slots(self, job: Job) -> IntArray:
        """Replicas of `job` each node could take now (CPU and memory included)."""
        slots = self.gpus // job.per_replica
        if job.cpu_milli:
            slots = np.minimum(slots, self.cpu // job.cpu_milli)
        if job.memory_mib:
            slots = np.minimum(slots, self.memory // job.memory_mib)
        return np.maximum(slots, 0)


def place(
    free: Free,
    eligible: BoolArray,
    node_site: IntArray,
    job: Job,
    best_fit: bool = False,
) -> Allocation | None:
    """First-fit: lowest-numbered nodes. Best-fit: nodes left with the fewest free GPUs
    (ties by node order); a node counts only where the replica's CPU and memory fit too."""
    replicas, per_replica = job.replicas, job.per_replica
    slots = np.where(eligible, free.slots(job), 0)
    if replicas == 1:
        candidates = np.flatnonzero(slots)
        if candidates.size == 0:
            return None
        node = candidates[np.argmin(free.gpus[candidates])] if best_fit else candidates[0]
        return ((int(node), per_replica),)
    per_site = np.bincount(node_site, weights=slots)
    sites = np.flatnonzero(per_site >= replicas)
    if sites.size == 0:
        return None
    site = sites[np.argmin(per_site[sites])] if best_fit else sites[0]
    nodes = np.flatnonzero((node_site == site) & (slots > 0))
    if best_fit:
        # Tightest nodes first so the big holes stay open for big gangs.
        nodes = nodes[np.argsort(free.gpus[nodes], kind="stable")]
    alloc: list[tuple[int, int]] = []
    left = replicas
    for node in nodes:
        take = min(int(slots[node]), left)
        alloc.extend((int(node), per_replica) for _ in range(take))
        left -= take
        if left == 0:
            break
    return tuple(alloc)


def fits_empty(fleet: SimFleet, job: Job) -> bool:
    """Whether the job could ever run on this fleet (on an otherwise empty fleet)."""
    eligible = fleet.eligible(job.classes, job.residency)
    return place(Free.of(fleet), eligible, fleet.node_site, job) is not None
