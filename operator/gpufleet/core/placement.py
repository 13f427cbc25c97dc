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
    """Pool-wide best fit without scanning the pool: walk the ready nodes by free
    accelerators (ascending, then node order: the order `best_fit` sorts into) only
    until the gang is complete.

    The first nodes of a bucket are checked in plain Python (numpy's per-call cost
    dominates for the few nodes a small gang needs); a long run of nodes that cannot
    take a replica switches to one vectorised check of the rest of the bucket.
    """
    a = w.accelerators_per_replica
    cpu_r = w.cpu_millis_per_replica
    mem_r = w.memory_bytes_per_replica
    hist = state.hist[pool]
    buckets = state.buckets[pool]
    cpu, mem, pods = state.cpu, state.mem, state.pods
    chosen: list[int] = []
    got = 0
    for k in range(a, len(hist)):
        if hist[k] == 0:
            continue
        bucket = buckets[k]
        per_acc = k // a
        for i, n in enumerate(bucket):
            if i == _SCALAR_NODES:
                got = _bucket_rest(state, w, bucket[i:], chosen, got, want)
                break
            f = per_acc
            if cpu_r:
                f = min(f, int(cpu[n]) // cpu_r)
            if mem_r:
                f = min(f, int(mem[n]) // mem_r)
            f = min(f, int(pods[n]))
            if f <= 0:
                continue
            take = min(f, want - got)
            chosen.extend([n] * take)
            got += take
            if got == want:
                break
        if got == want:
            break
    if got < w.min_replicas or got == 0:
        return None
    return PoolFit(got, np.asarray(chosen, dtype=np.int64), missed)


# Nodes of one bucket checked one by one before switching to numpy.
_SCALAR_NODES = 64


def _bucket_rest(
    state: CycleState, w: Workload, rest: list[int], chosen: list[int], got: int, want: int
) -> int:
    """The vectorised tail of a bucket walk: extends `chosen`, returns the new count."""
    idx = np.asarray(rest, dtype=np.int64)
    f = state.fit_at(idx, w)
    keep = f > 0
    idx, f = idx[keep], f[keep]
    if len(f) == 0:
        return got
    cum = np.cumsum(f)
    if got + int(cum[-1]) >= want:
        cut = int(np.searchsorted(cum, want - got))
        take = f[: cut + 1].copy()
        take[-1] -= got + int(cum[cut]) - want
        chosen.extend(np.repeat(idx[: cut + 1], take).tolist())
        return want
    chosen.extend(np.repeat(idx, f).tolist())
    return got + int(cum[-1])


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
