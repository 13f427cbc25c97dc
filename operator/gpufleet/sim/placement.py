"""Node-exact gang placement heuristics used by the baseline policies.

A gang lands whole on one site or not at all; each replica on one node.
"""

from __future__ import annotations

import numpy as np

from gpufleet.sim.fleet import BoolArray, IntArray

Allocation = tuple[tuple[int, int], ...]
"""(node index, accelerators) pairs of one placed job."""


def place(
    free: IntArray,
    eligible: BoolArray,
    node_site: IntArray,
    replicas: int,
    per_replica: int,
    best_fit: bool = False,
) -> Allocation | None:
    """First-fit: lowest-numbered nodes. Best-fit: nodes left with the fewest free GPUs."""
    fits = eligible & (free >= per_replica)
    if replicas == 1:
        candidates = np.flatnonzero(fits)
        if candidates.size == 0:
            return None
        node = candidates[np.argmin(free[candidates])] if best_fit else candidates[0]
        return ((int(node), per_replica),)
    slots = np.where(fits, free // per_replica, 0)
    per_site = np.bincount(node_site, weights=slots)
    sites = np.flatnonzero(per_site >= replicas)
    if sites.size == 0:
        return None
    site = sites[np.argmin(per_site[sites])] if best_fit else sites[0]
    nodes = np.flatnonzero((node_site == site) & (slots > 0))
    if best_fit:
        # Tightest nodes first so the big holes stay open for big gangs.
        nodes = nodes[np.argsort(free[nodes], kind="stable")]
    alloc: list[tuple[int, int]] = []
    left = replicas
    for node in nodes:
        take = min(int(slots[node]), left)
        alloc.extend((int(node), per_replica) for _ in range(take))
        left -= take
        if left == 0:
            break
    return tuple(alloc)


def fits_empty(
    capacity: IntArray, eligible: BoolArray, node_site: IntArray, replicas: int, per_replica: int
) -> bool:
    """Whether the job could ever run on this fleet (on an otherwise empty fleet)."""
    return place(capacity, eligible, node_site, replicas, per_replica) is not None
