"""Mutable per-cycle working state over a snapshot, with claim/release and their undo.

The snapshot stays untouched; a cycle copies the free-capacity arrays once and
updates them in place as it admits and evicts. Per pool it also keeps a
histogram of free accelerators per ready node, which gives a cheap upper
bound on how many replicas of a shape could fit, so hopeless attempts never
touch the node arrays.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable

import numpy as np

from gpufleet.core.fairshare import INF
from gpufleet.core.model import Workload
from gpufleet.core.snapshot import IntArray, Snapshot


class CycleState:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.acc = snap.acc_free.copy()
        self.cpu = snap.cpu_free.copy()
        self.mem = snap.mem_free.copy()
        self.pods = snap.pods_free.copy()
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
        """`fit` for the given node indices."""
        f = self.acc[nodes] // w.accelerators_per_replica
        if w.cpu_millis_per_replica:
            np.minimum(f, self.cpu[nodes] // w.cpu_millis_per_replica, out=f)
        if w.memory_bytes_per_replica:
            np.minimum(f, self.mem[nodes] // w.memory_bytes_per_replica, out=f)
        np.minimum(f, self.pods[nodes], out=f)
        f *= self.ready_i[nodes]
        np.maximum(f, 0, out=f)
        return f

    # -- claim / release ----------------------------------------------------------

    def _touch_nodes(self, nodes: IntArray | tuple[int, ...], w: Workload, sign: int) -> None:
        a = w.accelerators_per_replica
        cpu = w.cpu_millis_per_replica
        mem = w.memory_bytes_per_replica
        top = self.max_acc
        if len(nodes) > 8:
            self._touch_many(np.asarray(nodes, dtype=np.int64), a, cpu, mem, sign)
            return
        acc = self.acc
        for n in nodes:
            n = int(n)
            before = acc[n]
            after = before + sign * a
            acc[n] = after
            self.cpu[n] += sign * cpu
            self.mem[n] += sign * mem
            self.pods[n] += sign
            if self.ready[n]:
                p = int(self.node_pool[n])
                b = min(max(int(before), 0), top)
                c = min(max(int(after), 0), top)
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

    def _touch_many(self, nodes: IntArray, a: int, cpu: int, mem: int, sign: int) -> None:
        """`_touch_nodes` for large gangs: array updates and one histogram delta per pool."""
        top = self.max_acc
        u, count = np.unique(nodes, return_counts=True)
        before = self.acc[u]
        after = before + sign * a * count
        self.acc[u] = after
        if cpu:
            self.cpu[u] += sign * cpu * count
        if mem:
            self.mem[u] += sign * mem * count
        self.pods[u] += sign * count
        ready = self.ready[u]
        pools = self.node_pool[u]
        for p in np.unique(pools[ready]).tolist():
            sel = ready & (pools == p)
            delta = np.bincount(np.clip(after[sel], 0, top), minlength=top + 1) - np.bincount(
                np.clip(before[sel], 0, top), minlength=top + 1
            )
            h = self.hist[p]
            for k, d in enumerate(delta.tolist()):
                h[k] += d
        bc = np.clip(before, 0, top).tolist()
        ac = np.clip(after, 0, top).tolist()
        for n, p, r, b, c in zip(u.tolist(), pools.tolist(), ready.tolist(), bc, ac, strict=True):
            if r:
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

    def claim(self, w: Workload, queue: int, pool: int, nodes: IntArray | tuple[int, ...]) -> None:
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
