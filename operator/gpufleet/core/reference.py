"""A plain pure-Python reference of the same cycle, for tests and the benchmark.

It reads only the snapshot's objects (and the fair shares, which are plain
Python already) and walks nodes one by one with dicts and lists: no arrays, no
histogram bounds, no early exits, a linear search for the smallest victim set.
The fast cycle must return the same admissions, evictions and order.
"""

from __future__ import annotations

import heapq

from gpufleet.core.fairness import (
    below_share_in,
    evictable,
    history_ratio,
    lost_work,
    queue_rank,
    reclaim_ready,
    started_by_wait_bound,
    waited_bound,
    waiting_since,
)
from gpufleet.core.fairshare import INF
from gpufleet.core.model import Admission, CycleResult, Eviction, Node, Workload
from gpufleet.core.snapshot import Snapshot


class _Ref:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.nodes: list[Node] = list(snap.nodes)
        self.pos = {n.name: i for i, n in enumerate(self.nodes)}
        self.acc = [n.accelerators for n in self.nodes]
        self.cpu = [n.cpu_millis for n in self.nodes]
        self.mem = [n.memory_bytes for n in self.nodes]
        self.pods = [n.pods for n in self.nodes]
        self.pool_of = {p.name: i for i, p in enumerate(snap.pools)}
        self.site_of = {s.name: i for i, s in enumerate(snap.sites)}
        self.queue_of = {q.name: i for i, q in enumerate(snap.queues)}
        self.classes = sorted(set(snap.classes))
        self.pool_nodes: list[list[int]] = [[] for _ in snap.pools]
        for i, n in enumerate(self.nodes):
            self.pool_nodes[self.pool_of[n.pool]].append(i)
        self.parent = [-1 if q.parent is None else self.queue_of[q.parent] for q in snap.queues]
        self.alloc = [dict.fromkeys(self.classes, 0) for _ in snap.queues]
        self.power = [0.0 for _ in snap.sites]
        for w in snap.running:
            self._use(w, w.placement.nodes if w.placement else (), -1)
            self._account(w, -1)
        self.evicted: set[str] = set()

    # bookkeeping -------------------------------------------------------------------

    def chain(self, q: int) -> list[int]:
        out = []
        while q >= 0:
            out.append(q)
            q = self.parent[q]
        return out

    def _use(self, w: Workload, nodes: tuple[str, ...], sign: int) -> None:
        for name in nodes:
            if name not in self.pos:
                continue
            i = self.pos[name]
            self.acc[i] += sign * w.accelerators_per_replica
            self.cpu[i] += sign * w.cpu_millis_per_replica
            self.mem[i] += sign * w.memory_bytes_per_replica
            self.pods[i] += sign

    def _account(
        self, w: Workload, sign: int, pool_name: str | None = None, count: int = 0
    ) -> None:
        if w.placement is not None and pool_name is None:
            pool_name, count = w.placement.pool, len(w.placement.nodes)
        assert pool_name is not None
        pool = self.snap.pools[self.pool_of[pool_name]]
        total = count * w.accelerators_per_replica
        for q in self.chain(self.queue_of[w.queue]):
            self.alloc[q][pool.accelerator_class] -= sign * total
        self.power[self.site_of[pool.site]] -= sign * total * pool.watts_per_accelerator

    def release(self, w: Workload) -> None:
        assert w.placement is not None
        self._use(w, w.placement.nodes, +1)
        self._account(w, +1)

    def restore(self, w: Workload) -> None:
        assert w.placement is not None
        self._use(w, w.placement.nodes, -1)
        self._account(w, -1)

    # limits ------------------------------------------------------------------------

    def limit(self, q: int, cls: str) -> float:
        return float(self.snap.queues[q].limit.get(cls, INF))

    def deserved(self, q: int, cls: str) -> float:
        return float(self.snap.queues[q].deserved.get(cls, 0))

    def share(self, q: int, cls: str) -> float:
        return self.snap.fair_share[q][self.snap.class_index[cls]]

    def ratio(self, q: int, cls: str) -> float:
        queue = self.snap.queues[q]
        return history_ratio(
            float(queue.usage.get(cls, 0.0)), float(queue.fair_usage.get(cls, 0.0))
        )

    def starved(self, q: int, w: Workload) -> bool:
        """Still below its share by the queue's reclaim margin, over every class `w`
        accepts together (no margin: no rule)."""
        margin = self.snap.queues[q].reclaim_margin
        classes = w.accelerator_classes
        return margin <= 0 or below_share_in(
            [float(self.alloc[q][c]) for c in classes],
            [self.deserved(q, c) for c in classes],
            [self.share(q, c) for c in classes],
            margin,
        )

    def cap(self, w: Workload, pool_i: int, reclaim: bool) -> float:
        pool = self.snap.pools[pool_i]
        a = w.accelerators_per_replica
        room = INF
        for q in self.chain(self.queue_of[w.queue]):
            lim = self.limit(q, pool.accelerator_class)
            if lim != INF:
                room = min(room, (lim - self.alloc[q][pool.accelerator_class]) // a)
            if reclaim:
                room = min(
                    room,
                    (
                        self.deserved(q, pool.accelerator_class)
                        - self.alloc[q][pool.accelerator_class]
                    )
                    // a,
                )
        site = self.site_of[pool.site]
        budget = self.snap.sites[site].power_budget_watts
        watts = pool.watts_per_accelerator * a
        if budget is not None and watts > 0:
            k = 0
            while self.power[site] + (k + 1) * watts <= budget and k < w.replicas:
                k += 1
            room = min(room, k if self.power[site] <= budget else -1)
        return room

    # placement ---------------------------------------------------------------------

    def fit_of(self, i: int, w: Workload) -> int:
        if not self.nodes[i].ready:
            return 0
        f = self.acc[i] // w.accelerators_per_replica
        if w.cpu_millis_per_replica:
            f = min(f, self.cpu[i] // w.cpu_millis_per_replica)
        if w.memory_bytes_per_replica:
            f = min(f, self.mem[i] // w.memory_bytes_per_replica)
        return max(0, min(f, self.pods[i]))

    def place(self, w: Workload, pool_i: int, cap: float) -> tuple[int, list[int], bool] | None:
        pool = self.snap.pools[pool_i]
        members = self.pool_nodes[pool_i]
        want = min(w.replicas, cap)
        if want < w.min_replicas or not members:
            return None
        fits = {i: self.fit_of(i, w) for i in members}
        total = sum(fits.values())
        scope = members
        missed = False
        if w.required_topology is not None:
            if w.required_topology not in pool.topology_keys:
                return None
            domains = self.domains(members, pool.topology_keys.index(w.required_topology))
            sums = [sum(fits[i] for i in d) for d in domains]
            count = int(min(want, max(sums)))
            if count < w.min_replicas:
                return None
            scope = self.tightest(domains, sums, count)
        else:
            count = int(min(want, total))
            if count < w.min_replicas:
                return None
            if w.preferred_topology is not None:
                missed = True
                if w.preferred_topology in pool.topology_keys:
                    level = pool.topology_keys.index(w.preferred_topology)
                    domains = self.domains(members, level)
                    sums = [sum(fits[i] for i in d) for d in domains]
                    if max(sums) >= count:
                        scope = self.tightest(domains, sums, count)
                        missed = False
        chosen: list[int] = []
        for i in sorted((i for i in scope if fits[i] > 0), key=lambda i: (self.acc[i], i)):
            take = min(fits[i], count - len(chosen))
            chosen.extend([i] * take)
            if len(chosen) == count:
                break
        return count, chosen, missed

    def domains(self, members: list[int], level: int) -> list[list[int]]:
        out: list[list[int]] = []
        prev: tuple[str, ...] | None = None
        for i in members:
            key = self.nodes[i].topology[: level + 1]
            if key != prev:
                out.append([])
                prev = key
            out[-1].append(i)
        return out

    @staticmethod
    def tightest(domains: list[list[int]], sums: list[int], count: int) -> list[int]:
        best = None
        for j, s in enumerate(sums):
            if s >= count and (best is None or s < sums[best]):
                best = j
        assert best is not None
        return domains[best]

    def candidates(self, w: Workload) -> list[int]:
        snap = self.snap
        queue_chain = self.chain(self.queue_of[w.queue])
        out = []
        for p, pool in enumerate(snap.pools):
            site = snap.sites[self.site_of[pool.site]]
            if pool.accelerator_class not in w.accelerator_classes:
                continue
            if not (site.schedulable and site.connected):
                continue
            if not w.residency.allows_location(site) or (
                w.residency.certifications - site.certifications
            ):
                continue
            entitled = True
            for q in queue_chain:
                queue = snap.queues[q]
                if queue.allowed_sites is not None and site.name not in queue.allowed_sites:
                    entitled = False
                if (
                    queue.allowed_jurisdictions is not None
                    and site.jurisdiction not in queue.allowed_jurisdictions
                ):
                    entitled = False
            if not entitled:
                continue
            rank = (
                w.site_preferences.index(site.name)
                if site.name in w.site_preferences
                else len(w.site_preferences)
            )
            out.append(
                (
                    w.accelerator_classes.index(pool.accelerator_class),
                    rank,
                    pool.cost_per_accelerator_hour,
                    p,
                )
            )
        return [c[3] for c in sorted(out)]

    # victims -----------------------------------------------------------------------

    def victims(self, w: Workload, pool_i: int, reclaim: bool) -> list[Workload]:
        snap = self.snap
        pool = snap.pools[pool_i]
        q = self.queue_of[w.queue]
        cands = []
        for v in snap.running:
            assert v.placement is not None
            if v.key in self.evicted or v.placement.pool != pool.name or not v.preemptible:
                continue
            vq = self.queue_of[v.queue]
            vqueue = snap.queues[vq]
            if reclaim and (vq == q or not vqueue.reclaimable or not snap.is_leaf[vq]):
                continue
            if (
                reclaim
                and started_by_wait_bound(
                    v.created_at, v.eviction_times, v.placement.started_at, vqueue.max_wait_seconds
                )
                and not waited_bound(
                    w.created_at, w.eviction_times, snap.now, snap.queues[q].max_wait_seconds
                )
            ):
                continue
            if not reclaim and (vq != q or v.priority >= w.priority):
                continue
            if snap.now - v.placement.started_at < vqueue.min_runtime_seconds:
                continue
            if not evictable(
                v.eviction_times, snap.now, vqueue.max_evictions, vqueue.eviction_window_seconds
            ):
                continue
            cands.append(v)

        def cost(v: Workload) -> tuple[int, float, float, str]:
            assert v.placement is not None
            size = len(v.placement.nodes) * v.accelerators_per_replica
            started = v.placement.started_at
            lost = lost_work(size, started, snap.now, v.checkpoint_interval_seconds)
            return (v.priority, lost, -started, v.key)

        cands.sort(key=cost)
        if not reclaim:
            return cands
        cls = pool.accelerator_class
        mine = set(self.chain(q))
        sim = {x: self.alloc[x][cls] for x in range(len(snap.queues))}
        out: list[Workload] = []
        taken: set[str] = set()
        # First the queues above their fair share, then those above their deserved share only.
        for above_fair_share in (True, False):
            for v in cands:
                if v.key in taken:
                    continue
                vq = self.queue_of[v.queue]
                chain = [x for x in self.chain(vq) if x not in mine]
                assert v.placement is not None
                size = len(v.placement.nodes) * v.accelerators_per_replica
                if above_fair_share and sim[chain[0]] <= self.share(vq, cls):
                    continue
                if self.ratio(vq, cls) < self.ratio(q, cls):
                    continue
                if any(sim[x] - size < self.deserved(x, cls) for x in chain):
                    continue
                for x in chain:
                    sim[x] -= size
                out.append(v)
                taken.add(v.key)
        return out

    def with_victims(self, w: Workload, reclaim: bool) -> bool:
        q = self.queue_of[w.queue]
        queue = self.snap.queues[q]
        if reclaim and not reclaim_ready(
            queue.starved_since, self.snap.now, queue.reclaim_delay_seconds
        ):
            return False
        if reclaim and not self.starved(q, w):
            return False
        for p in self.candidates(w):
            cls = self.snap.pools[p].accelerator_class
            if reclaim:
                room = min(
                    (self.deserved(x, cls) - self.alloc[x][cls]) // w.accelerators_per_replica
                    for x in self.chain(q)
                )
                if room < w.min_replicas:
                    continue
            vs = self.victims(w, p, reclaim)
            for m in range(1, len(vs) + 1):
                for v in vs[:m]:
                    self.release(v)
                placed = self.place(w, p, self.cap(w, p, reclaim))
                if placed is None:
                    for v in reversed(vs[:m]):
                        self.restore(v)
                    continue
                kept = vs[:m]
                if reclaim:
                    kept = self.prune(w, p, placed, vs[:m])
                for v in kept:
                    self.evicted.add(v.key)
                    self.evictions.append(
                        Eviction(v.key, "Reclaimed" if reclaim else "Preempted", w.key)
                    )
                self.admit(w, p, placed)
                return True
        return False

    def prune(
        self, w: Workload, p: int, placed: tuple[int, list[int], bool], chosen: list[Workload]
    ) -> list[Workload]:
        pool = self.snap.pools[p]
        site = self.site_of[pool.site]
        budget = self.snap.sites[site].power_budget_watts
        need = placed[0] * w.accelerators_per_replica
        used = {self.nodes[i].name for i in placed[1]}
        kept = []
        for v in reversed(chosen):
            assert v.placement is not None
            if used.intersection(v.placement.nodes):
                kept.append(v)
                continue
            self.restore(v)
            ok = (
                budget is None or self.power[site] + need * pool.watts_per_accelerator <= budget
            ) and all(
                self.alloc[x][pool.accelerator_class] + need
                <= min(
                    self.limit(x, pool.accelerator_class), self.deserved(x, pool.accelerator_class)
                )
                for x in self.chain(self.queue_of[w.queue])
            )
            if not ok:
                self.release(v)
                kept.append(v)
        kept.reverse()
        return kept

    # cycle -------------------------------------------------------------------------

    def admit(self, w: Workload, p: int, placed: tuple[int, list[int], bool]) -> None:
        pool = self.snap.pools[p]
        names = tuple(self.nodes[i].name for i in placed[1])
        self._use(w, names, -1)
        self._account(w, -1, pool.name, placed[0])
        self.admissions.append(Admission(w.key, pool.site, pool.name, names))
        self.admitted.add(w.key)

    def run(self) -> CycleResult:
        snap = self.snap
        self.admissions: list[Admission] = []
        self.evictions: list[Eviction] = []
        self.admitted: set[str] = set()
        order: list[str] = []
        by_queue: dict[int, list[Workload]] = {}
        for w in snap.pending:
            by_queue.setdefault(self.queue_of[w.queue], []).append(w)
        for ws in by_queue.values():
            ws.sort(
                key=lambda w: (-w.priority, waiting_since(w.created_at, w.eviction_times), w.key)
            )

        def rank(q: int) -> float:
            cls = by_queue[q][0].accelerator_classes[0]
            queue = snap.queues[q]
            return queue_rank(
                self.alloc[q][cls],
                self.share(q, cls),
                float(queue.usage.get(cls, 0.0)),
                float(queue.fair_usage.get(cls, 0.0)),
                queue.present_weight_seconds,
                snap.now - waiting_since(by_queue[q][0].created_at, by_queue[q][0].eviction_times),
                queue.wait_credit_seconds,
                queue.max_wait_seconds,
            )

        heap = [(rank(q), -snap.queues[q].priority, q) for q in by_queue]
        heapq.heapify(heap)
        while heap:
            _, prio, q = heapq.heappop(heap)
            w = by_queue[q].pop(0)
            order.append(w.key)
            self.attempt(w)
            if by_queue[q]:
                heapq.heappush(heap, (rank(q), prio, q))
        return CycleResult(
            admissions=self.admissions,
            evictions=self.evictions,
            verdicts={},
            fair_shares={
                q.name: dict(zip(snap.classes, snap.fair_share[i], strict=True))
                for i, q in enumerate(snap.queues)
            },
            queue_order=order,
            positions={},
            allocated={q.name: dict(self.alloc[i]) for i, q in enumerate(snap.queues)},
        )

    def attempt(self, w: Workload) -> None:
        best: tuple[tuple[int, bool, int], int, tuple[int, list[int], bool]] | None = None
        for rank, p in enumerate(self.candidates(w)):
            placed = self.place(w, p, self.cap(w, p, reclaim=False))
            if placed is None:
                continue
            key = (-placed[0], placed[2], rank)
            if best is None or key < best[0]:
                best = (key, p, placed)
        if best is not None:
            self.admit(w, best[1], best[2])
            return
        if not self.with_victims(w, reclaim=True):
            self.with_victims(w, reclaim=False)


def schedule_reference(snapshot: Snapshot) -> CycleResult:
    """The reference cycle; verdicts and positions are left empty."""
    return _Ref(snapshot).run()
