"""Node-exact gang placement inside one pool: topology domain, then best-fit nodes.

All work is on slices of the node arrays (a pool and each of its topology
domains are contiguous), so the cost is a few numpy calls per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpufleet.core.model import Workload
from gpufleet.core.snapshot import IntArray
from gpufleet.core.state import CycleState


@dataclass(frozen=True, slots=True)
class PoolFit:
    """A feasible placement of `count` replicas; `topology_missed` when a preference failed."""

    count: int
    nodes: IntArray  # absolute node indices, one per replica
    topology_missed: bool


def topology_level(keys: tuple[str, ...], key: str | None) -> int | None:
    if key is None or key not in keys:
        return None
    return keys.index(key)


def domain_sums(f: IntArray, starts: IntArray) -> IntArray:
    if len(f) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.add.reduceat(f, starts)


def place_in_pool(state: CycleState, w: Workload, pool: int, cap: float) -> PoolFit | None:
    """Largest gang (<= replicas and <= cap, >= min_replicas) that fits in `pool`, or None."""
    snap = state.snap
    lay = snap.layouts[pool]
    want = min(w.replicas, cap)
    if want < w.min_replicas or lay.end == lay.start:
        return None
    keys = snap.pools[pool].topology_keys
    if w.required_topology is None and topology_level(keys, w.preferred_topology) is None:
        return _by_buckets(state, w, pool, int(want), missed=w.preferred_topology is not None)
    f = state.fit(lay.start, lay.end, w)
    total = int(f.sum())
    lo, hi = 0, len(f)
    missed = False
    if w.required_topology is not None:
        level = topology_level(keys, w.required_topology)
        if level is None:
            return None
        starts = lay.domain_starts[level]
        sums = domain_sums(f, starts)
        count = int(min(want, int(sums.max())))
        if count < w.min_replicas:
            return None
        lo, hi = _tightest(sums, starts, count, len(f))
    else:
        count = int(min(want, total))
        if count < w.min_replicas:
            return None
        level = topology_level(keys, w.preferred_topology)
        if w.preferred_topology is not None:
            missed = True
            if level is not None:
                starts = lay.domain_starts[level]
                sums = domain_sums(f, starts)
                if int(sums.max()) >= count:
                    lo, hi = _tightest(sums, starts, count, len(f))
                    missed = False
    nodes = best_fit(f[lo:hi], state.acc[lay.start + lo : lay.start + hi], count)
    return PoolFit(count, nodes + (lay.start + lo), missed)


def _by_buckets(
    state: CycleState, w: Workload, pool: int, want: int, missed: bool
) -> PoolFit | None:
    """Pool-wide best fit without scanning the pool: walk the nodes by free accelerators
    (ascending, the same order `best_fit` sorts into) only until the gang is complete."""
    lay = state.snap.layouts[pool]
    acc = state.acc[lay.start : lay.end]
    hist = state.hist[pool]
    parts: list[IntArray] = []
    takes: list[IntArray] = []
    got = 0
    for k in range(w.accelerators_per_replica, len(hist)):
        if hist[k] == 0:
            continue  # no ready node has exactly k free
        idx = np.flatnonzero(acc == k)
        f = state.fit_at(idx + lay.start, w)
        keep = f > 0
        idx, f = idx[keep], f[keep]
        if len(f) == 0:
            continue
        cum = np.cumsum(f)
        if got + int(cum[-1]) >= want:
            cut = int(np.searchsorted(cum, want - got))
            take = f[: cut + 1].copy()
            take[-1] -= got + int(cum[cut]) - want
            parts.append(idx[: cut + 1])
            takes.append(take)
            got = want
            break
        parts.append(idx)
        takes.append(f)
        got += int(cum[-1])
    if got < w.min_replicas or got == 0:
        return None
    nodes = np.repeat(np.concatenate(parts), np.concatenate(takes)) + lay.start
    return PoolFit(got, nodes, missed)


def _tightest(sums: IntArray, starts: IntArray, count: int, length: int) -> tuple[int, int]:
    """The domain that holds `count` replicas with the least room to spare (first on ties)."""
    room = np.where(sums >= count, sums, np.iinfo(np.int64).max)
    j = int(np.argmin(room))
    lo = int(starts[j])
    hi = int(starts[j + 1]) if j + 1 < len(starts) else length
    return lo, hi


def best_fit(f: IntArray, free: IntArray, count: int) -> IntArray:
    """Fill the fullest nodes first (fewest free accelerators), ties by position.

    Returns slice-relative node indices, one per replica.
    """
    candidates = np.flatnonzero(f > 0)
    order = candidates[np.argsort(free[candidates], kind="stable")]
    take = f[order]
    cum = np.cumsum(take)
    cut = int(np.searchsorted(cum, count))  # first node where the total reaches count
    chosen = order[: cut + 1]
    counts = take[: cut + 1].copy()
    counts[-1] -= int(cum[cut]) - count
    return np.repeat(chosen, counts)
