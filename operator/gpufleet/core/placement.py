"""Node-exact gang placement inside one pool: topology domain, then best-fit nodes.

A pool and each of its topology domains are contiguous slices of the node
arrays. Pool-wide best fit walks the state's free-accelerator buckets and stops
once the gang is complete; a topology level reads the state's cached per-domain
fit sums, then places inside one small domain in plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpufleet.core.cyclestate import CycleState
from gpufleet.core.model import Workload
from gpufleet.core.snapshot import IntArray

# Up to this many nodes (of a bucket, or of a topology domain) are handled in plain
# Python; numpy's per-call cost dominates below it.
_SCALAR_NODES = 64


@dataclass(frozen=True, slots=True)
class PoolFit:
    """A feasible placement of `count` replicas; `topology_missed` when a preference failed."""

    count: int
    nodes: list[int]  # absolute node indices, one per replica
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
    if w.required_topology is not None:
        level = topology_level(keys, w.required_topology)
        if level is None:
            return None
        fit = state.pool_fit(pool, w)
        sums = fit.levels[level]
        count = int(min(want, sums.max()))
        if count < w.min_replicas:
            return None
        lo, hi = _domain(state, pool, level, sums.tightest(count))
        return _in_domain(state, fit.f, lay.start, lo, hi, count, missed=False)
    # A preferred topology level of the pool (checked above); domains partition the pool.
    level = topology_level(keys, w.preferred_topology)
    assert level is not None
    fit = state.pool_fit(pool, w)
    sums = fit.levels[level]
    count = int(min(want, sums.total))
    if count < w.min_replicas:
        return None
    if sums.max() >= count:
        lo, hi = _domain(state, pool, level, sums.tightest(count))
        return _in_domain(state, fit.f, lay.start, lo, hi, count, missed=False)
    # No single domain holds it: pool-wide best fit, which the buckets give directly.
    return _by_buckets(state, w, pool, count, missed=True)


def _domain(state: CycleState, pool: int, level: int, j: int) -> tuple[int, int]:
    """Slice-relative bounds of domain `j` of a topology level."""
    lay = state.snap.layouts[pool]
    starts = state.domains(pool).starts[level]
    hi = starts[j + 1] if j + 1 < len(starts) else lay.end - lay.start
    return starts[j], hi


def _in_domain(
    state: CycleState, f: list[int], start: int, lo: int, hi: int, count: int, missed: bool
) -> PoolFit:
    """`best_fit` inside one topology domain; small domains in plain Python (numpy's
    per-call cost dominates there)."""
    fits = f[lo:hi]
    if hi - lo > _SCALAR_NODES:
        nodes = best_fit(
            np.asarray(fits, dtype=np.int64), state.acc[start + lo : start + hi], count
        )
        return PoolFit(count, (nodes + (start + lo)).tolist(), missed)
    free = state.acc_l[start + lo : start + hi]
    order = sorted((free[i], i) for i, x in enumerate(fits) if x > 0)
    chosen: list[int] = []
    got = 0
    for _, i in order:
        take = min(fits[i], count - got)
        chosen.extend([start + lo + i] * take)
        got += take
        if got == count:
            break
    return PoolFit(count, chosen, missed)


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
    cpu, mem, pods = state.cpu_l, state.mem_l, state.pods_l
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
                f = min(f, cpu[n] // cpu_r)
            if mem_r:
                f = min(f, mem[n] // mem_r)
            f = min(f, pods[n])
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
    return PoolFit(got, chosen, missed)


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
