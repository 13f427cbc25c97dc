"""Mutable per-cycle working state over a snapshot, with claim/release and their undo.

The snapshot stays untouched; a cycle copies the free-capacity arrays once and
updates them in place as it admits and evicts. Per pool it also keeps a
histogram of free accelerators per ready node, which gives a cheap upper
bound on how many replicas of a shape could fit, so hopeless attempts never
touch the node arrays, and the ready nodes of each histogram bucket in node
order, which best fit walks. The per-node fit of a replica shape over a whole
pool, with its per-domain sums, is cached and caught up from a log of the nodes
touched since, instead of being recomputed at every attempt.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np

from gpufleet.core.fairshare import INF
from gpufleet.core.model import Workload
from gpufleet.core.snapshot import IntArray, Snapshot

# Replica shapes whose pool-wide fit is cached (each holds one int per node of a pool).
_SHAPE_CACHE = 64


class _ShapeFit:
    """A cached pool-wide fit for one replica shape; `synced` is a position in the
    pool's touched-node log."""

    __slots__ = ("f", "flat", "sums", "synced")

    def __init__(self, f: IntArray, flat: IntArray, sums: list[IntArray], synced: int) -> None:
        self.f = f
        self.flat = flat  # all levels' domain sums end to end; `sums` are views of it
        self.sums = sums
        self.synced = synced


class CycleState:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        # One row per node (accelerators, CPU, memory, pods, readiness) so a per-node
        # fit is one gather and one division; the named arrays are column views.
        ready_cap = np.where(snap.node_ready, np.iinfo(np.int64).max, 0)
        self.res = np.stack(
            [snap.acc_free, snap.cpu_free, snap.mem_free, snap.pods_free, ready_cap], axis=1
        )
        self.acc = self.res[:, 0]
        self.cpu = self.res[:, 1]
        self.mem = self.res[:, 2]
        self.pods = self.res[:, 3]
        self._divisors: dict[tuple[int, int, int], tuple[IntArray, list[int] | None]] = {}
        self.ready = snap.node_ready
        self.ready_i = snap.node_ready.astype(np.int64)
        self.power = list(snap.power_used)
        self.alloc = [list(row) for row in snap.allocated]
        self.max_acc = int(snap.acc_cap.max()) if len(snap.acc_cap) else 0
        self.node_pool = np.zeros(len(snap.nodes), dtype=np.int64)
        self.hist: list[list[int]] = []
        # buckets[pool][k]: ready nodes with exactly k free accelerators (k >= 1), in
        # node order. Best fit walks them instead of scanning the pool's arrays.
        # Bucket 0 (full nodes, most of a busy pool) is never read, so not kept.
        self.buckets: list[list[list[int]]] = []
        for p, lay in enumerate(snap.layouts):
            self.node_pool[lay.start : lay.end] = p
            sl = slice(lay.start, lay.end)
            free = np.clip(self.acc[sl][self.ready[sl]], 0, self.max_acc)
            self.hist.append(np.bincount(free, minlength=self.max_acc + 1).tolist())
            clipped = np.where(self.ready[sl], np.clip(self.acc[sl], 0, self.max_acc), 0)
            self.buckets.append(
                [[]]
                + [
                    (np.flatnonzero(clipped == k) + lay.start).tolist()
                    for k in range(1, self.max_acc + 1)
                ]
            )
        self.version = [0] * len(snap.pools)
        self._ready_l: list[bool] = self.ready.tolist()
        self._node_pool_l: list[int] = self.node_pool.tolist()
        # Nodes touched per pool since the start, for the lazy per-shape fit cache.
        self.touched: list[list[int]] = [[] for _ in snap.pools]
        self._fits: dict[tuple[int, int, int, int], _ShapeFit] = {}
        self._domain_of: dict[int, IntArray] = {}
        self._ub: dict[tuple[int, int], tuple[int, int]] = {}

    # -- bounds -------------------------------------------------------------------

    def upper_bound(self, pool: int, per_replica: int) -> int:
        """Replicas of `per_replica` accelerators the pool's free accelerators could hold."""
        key = (pool, per_replica)
        hit = self._ub.get(key)
        version = self.version[pool]
        if hit is not None and hit[0] == version:
            return hit[1]
        h = self.hist[pool]
        ub = sum(h[x] * (x // per_replica) for x in range(per_replica, len(h)))
        self._ub[key] = (version, ub)
        return ub

    def quota_room(self, queue: int, cls: int, per_replica: int) -> float:
        """Replicas the queue and its ancestors' limits still allow (inf if unlimited)."""
        snap = self.snap
        room = INF
        for q in snap.chains[queue]:
            lim = snap.limit[q][cls]
            if lim != INF:
                room = min(room, (lim - self.alloc[q][cls]) // per_replica)
        return room

    def deserved_room(self, queue: int, cls: int, per_replica: int) -> float:
        snap = self.snap
        room = INF
        for q in snap.chains[queue]:
            room = min(room, (snap.deserved[q][cls] - self.alloc[q][cls]) // per_replica)
        return room

    def power_room(self, pool: int, per_replica: int) -> float:
        snap = self.snap
        site = snap.pool_site[pool]
        budget = snap.power_budget[site]
        watts = snap.pools[pool].watts_per_accelerator * per_replica
        if budget == INF or watts <= 0:
            return INF
        k = math.floor((budget - self.power[site]) / watts)
        # Guard against rounding: the check that matters is used + k*watts <= budget.
        while k > 0 and self.power[site] + k * watts > budget:
            k -= 1
        return max(k, -1) if self.power[site] <= budget else -1

    # -- per-node fit -------------------------------------------------------------

    def pool_fit(self, pool: int, w: Workload) -> tuple[IntArray, list[IntArray]]:
        """`fit` over the whole pool and its sums per topology domain (one array per
        level), cached per replica shape and brought up to date from the nodes
        touched since. Read-only for the caller."""
        lay = self.snap.layouts[pool]
        key = (
            pool,
            w.accelerators_per_replica,
            w.cpu_millis_per_replica,
            w.memory_bytes_per_replica,
        )
        log = self.touched[pool]
        hit = self._fits.get(key)
        if hit is None or len(log) - hit.synced > lay.end - lay.start:
            f = self.fit(lay.start, lay.end, w)
            flat = np.concatenate(
                [np.add.reduceat(f, starts) for starts in lay.domain_starts]
                or [np.zeros(0, dtype=np.int64)]
            )
            bounds = np.cumsum([0] + [len(starts) for starts in lay.domain_starts]).tolist()
            sums = [flat[lo:hi] for lo, hi in pairwise(bounds)]
            hit = _ShapeFit(f, flat, sums, len(log))
            if len(self._fits) >= _SHAPE_CACHE:
                del self._fits[next(iter(self._fits))]
            self._fits[key] = hit
        elif hit.synced < len(log):
            idx = np.fromiter(set(log[hit.synced :]), dtype=np.int64)
            hit.synced = len(log)
            new = self.fit_at(idx, w)
            rel = idx - lay.start
            delta = new - hit.f[rel]
            hit.f[rel] = new
            if hit.sums:
                # One scatter for all levels: each node's domain at every level.
                np.add.at(hit.flat, self._domains(pool)[rel], delta[:, None])
        return hit.f, hit.sums

    def _domains(self, pool: int) -> IntArray:
        """Per node of the pool (slice-relative), its domain at each topology level,
        numbered as in `_ShapeFit.flat` (levels end to end)."""
        out = self._domain_of.get(pool)
        if out is None:
            lay = self.snap.layouts[pool]
            rel = np.arange(lay.end - lay.start)
            cols, offset = [], 0
            for starts in lay.domain_starts:
                cols.append(np.searchsorted(starts, rel, side="right") - 1 + offset)
                offset += len(starts)
            out = np.stack(cols, axis=1) if cols else np.zeros((len(rel), 0), dtype=np.int64)
            self._domain_of[pool] = out
        return out

    def fit(self, start: int, end: int, w: Workload) -> IntArray:
        """Replicas of `w` each node in [start, end) can take now."""
        # Accelerators first; the other resources only where a replica could go
        # (in a busy fleet that is a small share of the nodes).
        f = self.acc[start:end] // w.accelerators_per_replica
        some = np.flatnonzero(f > 0)
        out = np.zeros_like(f)
        out[some] = self.fit_at(some + start, w)
        return out

    def fit_at(self, nodes: IntArray, w: Workload) -> IntArray:
        """`fit` for the given node indices: min over the resources of free // request
        (a resource not requested does not limit), 0 on nodes that are not ready."""
        a, cpu, mem = (
            w.accelerators_per_replica,
            w.cpu_millis_per_replica,
            w.memory_bytes_per_replica,
        )
        shape = self._divisors.get((a, cpu, mem))
        if shape is None:
            used = [0] + ([1] if cpu else []) + ([2] if mem else []) + [3, 4]
            div = np.asarray([a, cpu or 1, mem or 1, 1, 1], dtype=np.int64)[used]
            shape = self._divisors[(a, cpu, mem)] = (div, None if len(used) == 5 else used)
        div, cols = shape
        rows = self.res[nodes] if cols is None else self.res[nodes][:, cols]
        f: IntArray = np.minimum.reduce(rows // div, axis=1)
        np.maximum(f, 0, out=f)
        return f

    # -- claim / release ----------------------------------------------------------

    def _touch_nodes(self, nodes: IntArray | Sequence[int], w: Workload, sign: int) -> None:
        a = w.accelerators_per_replica
        cpu = w.cpu_millis_per_replica
        mem = w.memory_bytes_per_replica
        top = self.max_acc
        ids: list[int] = nodes.tolist() if isinstance(nodes, np.ndarray) else list(nodes)
        if len(ids) > 8:
            self._touch_many(ids, a, cpu, mem, sign)
            return
        # Plain ints and `item`: numpy scalar arithmetic costs more than the update.
        acc, cpu_a, mem_a, pods = self.acc, self.cpu, self.mem, self.pods
        d_acc, d_cpu, d_mem = sign * a, sign * cpu, sign * mem
        ready, node_pool = self._ready_l, self._node_pool_l
        for n in ids:
            before = acc.item(n)
            after = before + d_acc
            acc[n] = after
            if d_cpu:
                cpu_a[n] = cpu_a.item(n) + d_cpu
            if d_mem:
                mem_a[n] = mem_a.item(n) + d_mem
            pods[n] = pods.item(n) + sign
            p = node_pool[n]
            self.touched[p].append(n)
            self.version[p] += 1  # the node's pool, even if a placement spans pools
            if ready[n]:
                b = min(max(before, 0), top)
                c = min(max(after, 0), top)
                if b != c:
                    h = self.hist[p]
                    h[b] -= 1
                    h[c] += 1
                    self._move(p, n, b, c)

    def _move(self, pool: int, node: int, old: int, new: int) -> None:
        """Move a ready node between free-accelerator buckets (bucket 0 is not kept)."""
        if old == new:
            return
        buckets = self.buckets[pool]
        if old:
            b = buckets[old]
            del b[bisect_left(b, node)]
        if new:
            insort(buckets[new], node)

    def _touch_many(self, nodes: list[int], a: int, cpu: int, mem: int, sign: int) -> None:
        """`_touch_nodes` for large gangs: array updates at once, then buckets per node."""
        top = self.max_acc
        counts: dict[int, int] = {}
        for n in nodes:
            counts[n] = counts.get(n, 0) + 1
        u = np.fromiter(counts, dtype=np.int64, count=len(counts))
        count = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
        before = self.acc[u]
        after = before + sign * a * count
        self.acc[u] = after
        if cpu:
            self.cpu[u] += sign * cpu * count
        if mem:
            self.mem[u] += sign * mem * count
        self.pods[u] += sign * count
        ready, node_pool = self._ready_l, self._node_pool_l
        for n, b, c in zip(counts, before.tolist(), after.tolist(), strict=True):
            p = node_pool[n]
            self.touched[p].append(n)
            self.version[p] += 1
            if ready[n]:
                b = min(max(b, 0), top)
                c = min(max(c, 0), top)
                if b != c:
                    h = self.hist[p]
                    h[b] -= 1
                    h[c] += 1
                    self._move(p, n, b, c)

    def _account(self, queue: int, pool: int, accelerators: int, sign: int) -> None:
        snap = self.snap
        cls = snap.pool_class[pool]
        for q in snap.chains[queue]:
            self.alloc[q][cls] += sign * accelerators
        self.power[snap.pool_site[pool]] += (
            sign * accelerators * snap.pools[pool].watts_per_accelerator
        )
        self.version[pool] += 1

    def claim(self, w: Workload, queue: int, pool: int, nodes: IntArray | Sequence[int]) -> None:
        self._touch_nodes(nodes, w, -1)
        self._account(queue, pool, w.accelerators_per_replica * len(nodes), +1)

    def release_running(self, r: int) -> None:
        """Simulate the removal of running workload `r`; `restore_running` undoes it."""
        snap = self.snap
        self._touch_nodes(snap.run_nodes[r], snap.running[r], +1)
        self._account(snap.run_queue[r], snap.run_pool[r], snap.run_accelerators[r], -1)

    def simulate_removal(self, r: int) -> Callable[[], None]:
        """Remove running workload `r` from the state; the returned function undoes it."""
        self.release_running(r)
        return lambda: self.restore_running(r)

    def restore_running(self, r: int) -> None:
        snap = self.snap
        self._touch_nodes(snap.run_nodes[r], snap.running[r], -1)
        self._account(snap.run_queue[r], snap.run_pool[r], snap.run_accelerators[r], +1)
