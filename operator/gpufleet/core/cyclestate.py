"""Mutable per-cycle working state over a snapshot, with claim/release and their undo.

The snapshot stays untouched; a cycle copies the free-capacity arrays once and
updates them in place as it admits and evicts. Per pool it also keeps a
histogram of free accelerators per ready node, which gives a cheap upper
bound on how many replicas of a shape could fit, so hopeless attempts never
touch the node arrays, and the ready nodes of each histogram bucket in node
order, which best fit walks. The per-node fit of a replica shape over a whole
pool, with its per-domain sums, is cached and caught up from a log of the nodes
touched since, instead of being recomputed at every attempt.

Free capacity lives in plain lists, which claims and releases update one node
at a time (cheap, especially compiled); the numpy copy that whole-pool fits read
is brought up to date from the pools' logs of touched nodes only when it is read.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence

import numpy as np

from gpufleet.core.domains import DomainSums, PoolDomains
from gpufleet.core.fairshare import INF
from gpufleet.core.model import Workload
from gpufleet.core.snapshot import IntArray, Snapshot

# Replica shapes whose pool-wide fit is cached (each holds one int per node of a pool).
_SHAPE_CACHE = 64


class ShapeFit:
    """A pool-wide fit for one replica shape, cached for the cycle: replicas per node
    (slice-relative) and the per-domain sums of every topology level; `synced` is a
    position in the pool's touched-node log."""

    __slots__ = ("f", "levels", "synced")

    def __init__(self, f: list[int], levels: list[DomainSums], synced: int) -> None:
        self.f = f
        self.levels = levels
        self.synced = synced


class CycleState:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        # One row per node (accelerators, CPU, memory, pods, readiness) so a per-node
        # fit is one gather and one division; the named arrays are column views.
        ready_cap = np.where(snap.node_ready, np.iinfo(np.int64).max, 0)
        self._res = np.stack(
            [snap.acc_free, snap.cpu_free, snap.mem_free, snap.pods_free, ready_cap], axis=1
        )
        self.acc_l: list[int] = snap.acc_free.tolist()
        self.cpu_l: list[int] = snap.cpu_free.tolist()
        self.mem_l: list[int] = snap.mem_free.tolist()
        self.pods_l: list[int] = snap.pods_free.tolist()
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
            acc = snap.acc_free[sl]
            free = np.clip(acc[self.ready[sl]], 0, self.max_acc)
            self.hist.append(np.bincount(free, minlength=self.max_acc + 1).tolist())
            clipped = np.where(self.ready[sl], np.clip(acc, 0, self.max_acc), 0)
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
        # Per pool, how much of `touched` the numpy copy has taken in.
        self._flushed = [0] * len(snap.pools)
        self._fits: dict[tuple[int, int, int, int], ShapeFit] = {}
        self._domains: dict[int, PoolDomains] = {}
        self._ub: dict[tuple[int, int], tuple[int, int]] = {}

    # -- the numpy copy -------------------------------------------------------------

    def flush(self) -> None:
        """Copy the changed nodes' list values into the numpy arrays."""
        changed: dict[int, None] = {}
        for p, log in enumerate(self.touched):
            if self._flushed[p] < len(log):
                changed.update(dict.fromkeys(log[self._flushed[p] :]))
                self._flushed[p] = len(log)
        if not changed:
            return
        ids = list(changed)
        idx = np.asarray(ids, dtype=np.int64)
        # Column by column: a list of ints per resource, no list per node.
        for col, values in enumerate((self.acc_l, self.cpu_l, self.mem_l, self.pods_l)):
            self._res[idx, col] = [values[n] for n in ids]

    @property
    def res(self) -> IntArray:
        """Per node: free accelerators, CPU, memory, pods, and a readiness cap."""
        self.flush()
        return self._res

    @property
    def acc(self) -> IntArray:
        return self.res[:, 0]

    @property
    def cpu(self) -> IntArray:
        return self.res[:, 1]

    @property
    def mem(self) -> IntArray:
        return self.res[:, 2]

    @property
    def pods(self) -> IntArray:
        return self.res[:, 3]

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

    def pool_fit(self, pool: int, w: Workload) -> ShapeFit:
        """The shape's fit over the whole pool with its per-domain sums, cached per
        replica shape and brought up to date from the nodes touched since. Read-only
        for the caller."""
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
            levels = [
                DomainSums(np.add.reduceat(f, starts).tolist() if len(f) else [])
                for starts in lay.domain_starts
            ]
            hit = ShapeFit(f.tolist(), levels, len(log))
            if len(self._fits) >= _SHAPE_CACHE:
                del self._fits[next(iter(self._fits))]
            self._fits[key] = hit
        elif hit.synced < len(log):
            fresh = list(dict.fromkeys(log[hit.synced :]))
            hit.synced = len(log)
            self._catch_up(hit, pool, fresh, w)
        return hit

    def _catch_up(self, hit: ShapeFit, pool: int, nodes: list[int], w: Workload) -> None:
        """Recompute the fit of `nodes` from the lists; move each domain's sum once."""
        a = w.accelerators_per_replica
        c = w.cpu_millis_per_replica
        m = w.memory_bytes_per_replica
        start = self.snap.layouts[pool].start
        domains = self.domains(pool)
        of, scratch = domains.of, domains.scratch
        moved: list[list[int]] = [[] for _ in of]
        f = hit.f
        ready = self._ready_l
        acc, cpu, mem, pods = self.acc_l, self.cpu_l, self.mem_l, self.pods_l
        for n in nodes:
            x = 0
            if ready[n]:
                x = min(acc[n] // a, pods[n])
                if c:
                    x = min(x, cpu[n] // c)
                if m:
                    x = min(x, mem[n] // m)
                x = max(x, 0)
            rel = n - start
            dx = x - f[rel]
            if dx:
                f[rel] = x
                for level in range(len(of)):
                    d = of[level][rel]
                    deltas = scratch[level]
                    if not deltas[d]:
                        moved[level].append(d)
                    deltas[d] += dx
        for level, sums in enumerate(hit.levels):
            deltas = scratch[level]
            for d in moved[level]:
                dx = deltas[d]
                if dx:  # a domain listed twice was applied the first time
                    deltas[d] = 0
                    sums.add(d, dx)

    def domains(self, pool: int) -> PoolDomains:
        """The pool's topology domains as lists, made on first use."""
        out = self._domains.get(pool)
        if out is None:
            lay = self.snap.layouts[pool]
            out = PoolDomains([s.tolist() for s in lay.domain_starts], lay.end - lay.start)
            self._domains[pool] = out
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
        d_acc = sign * w.accelerators_per_replica
        d_cpu = sign * w.cpu_millis_per_replica
        d_mem = sign * w.memory_bytes_per_replica
        top = self.max_acc
        ids: list[int] = nodes.tolist() if isinstance(nodes, np.ndarray) else list(nodes)
        acc, cpu, mem, pods = self.acc_l, self.cpu_l, self.mem_l, self.pods_l
        ready, node_pool = self._ready_l, self._node_pool_l
        for n in ids:
            before = acc[n]
            after = before + d_acc
            acc[n] = after
            if d_cpu:
                cpu[n] += d_cpu
            if d_mem:
                mem[n] += d_mem
            pods[n] += sign
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
