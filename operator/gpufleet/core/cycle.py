"""One scheduling cycle: order, filter, place, reclaim/preempt, explain.

Recipe (docs/architecture.md, "Scheduling semantics"):
1. fair shares come with the snapshot;
2. the leaf queue furthest below its fair share offers its next workload
   (priority, then age); the queue is re-ranked after each decision;
3. static filters (class, residency, entitlement, site) give the candidate
   pools in preference order; dynamic ones (quota limit, power, capacity)
   are checked per attempt, with a histogram bound before any node work;
4. the whole gang goes to one pool, node-exact, or nothing;
5. a workload that does not fit may reclaim (its queue below deserved) or
   preempt lower priority in its own queue;
6. verdicts for what stays pending are computed from the final state.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left

from gpufleet.core.cyclestate import CycleState
from gpufleet.core.explain import VerdictTable
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
from gpufleet.core.model import Admission, CycleResult, Eviction, Residency, Workload
from gpufleet.core.placement import PoolFit, place_in_pool
from gpufleet.core.snapshot import Snapshot

_NONE: list[int] = []  # shared empty result; never mutated
EligibleKey = tuple[int, Residency, tuple[str, ...], tuple[str, ...]]


def candidate_pools(snap: Snapshot, w: Workload) -> list[int]:
    """Pools passing the static filters, best first: class preference, site preference, cost."""
    queue = snap.queue_index[w.queue]
    ranked = []
    for p, pool in enumerate(snap.pools):
        if pool.accelerator_class not in w.accelerator_classes:
            continue
        site = snap.pool_site[p]
        if not snap.site_ok[site] or not snap.entitled[queue][site]:
            continue
        s = snap.sites[site]
        if not w.residency.allows_location(s) or w.residency.missing_certifications(s):
            continue
        site_rank = (
            w.site_preferences.index(s.name)
            if s.name in w.site_preferences
            else len(w.site_preferences)
        )
        ranked.append(
            (
                w.accelerator_classes.index(pool.accelerator_class),
                site_rank,
                pool.cost_per_accelerator_hour,
                p,
            )
        )
    ranked.sort()
    return [r[3] for r in ranked]


class History:
    """Each queue's decayed usage and fair usage per class, as arrays, and what follows
    from them for this cycle: the order key and the over-time ratio used by reclaim."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.usage = [[float(q.usage.get(c, 0.0)) for c in snap.classes] for q in snap.queues]
        self.fair = [[float(q.fair_usage.get(c, 0.0)) for c in snap.classes] for q in snap.queues]
        self.weight = [q.present_weight_seconds for q in snap.queues]
        self.credit = [q.wait_credit_seconds for q in snap.queues]
        self.max_wait = [q.max_wait_seconds for q in snap.queues]
        self.ratio = [
            [history_ratio(u, f) for u, f in zip(us, fs, strict=True)]
            for us, fs in zip(self.usage, self.fair, strict=True)
        ]
        # When each pending workload's present wait began (arrival or last eviction).
        self.since = [waiting_since(w.created_at, w.eviction_times) for w in snap.pending]

    def rank(self, q: int, cls: int, alloc: int, i: int) -> float:
        """`i`: the queue's next workload (index into the pending list), for its wait."""
        return queue_rank(
            alloc,
            self.snap.fair_share[q][cls],
            self.usage[q][cls],
            self.fair[q][cls],
            self.weight[q],
            self.snap.now - self.since[i],
            self.credit[q],
            self.max_wait[q],
        )


def known_classes(snap: Snapshot, w: Workload) -> tuple[int, ...]:
    """The snapshot's indices of the classes `w` accepts, in the workload's order."""
    index = snap.class_index
    return tuple(index[c] for c in w.accelerator_classes)


def starved_in(
    snap: Snapshot, alloc: list[list[int]], q: int, classes: tuple[int, ...], margin: float
) -> bool:
    """Queue `q` below its share by `margin` over `classes` together (shared with the
    reference: same rule, same floats)."""
    return below_share_in(
        [float(alloc[q][c]) for c in classes],
        [float(snap.deserved[q][c]) for c in classes],
        [float(snap.fair_share[q][c]) for c in classes],
        margin,
    )


def starved_queues(
    snap: Snapshot, alloc: list[list[int]], pending_classes: set[tuple[int, tuple[int, ...]]]
) -> frozenset[str]:
    """Leaf queues with pending work below their share, by their margin, over the
    classes that work accepts."""
    out = set()
    for q, classes in pending_classes:
        queue = snap.queues[q]
        if queue.name not in out and starved_in(snap, alloc, q, classes, queue.reclaim_margin):
            out.add(queue.name)
    return frozenset(out)


class Cycle:
    """The working state of one `schedule` call; used once, then discarded."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.state = CycleState(snap)
        self.admissions: list[Admission] = []
        self.evictions: list[Eviction] = []
        self.evicted: set[int] = set()
        self.admitted: set[str] = set()
        self.order: list[str] = []
        self._eligible: dict[EligibleKey, list[int]] = {}
        self.commits = 0  # bumped by every admission and eviction
        self._victim_order: dict[int, list[int]] = {}
        self._bound: list[bool] | None = None
        self._by_queue: dict[tuple[int, int], list[int]] | None = None
        self._own_priorities: dict[tuple[int, int], list[int]] = {}
        self._lowest_priority: dict[int, float] | None = None
        self._failed: dict[tuple[object, ...], tuple[int, int, int]] = {}
        self._reclaim_cache: dict[tuple[int, int, int, bool], list[int]] = {}
        self._pool_classes: dict[int, list[int]] = {}
        self.history = History(snap)
        # The class each pending workload prefers: the one its queue is ranked in.
        self._first_cls = [snap.class_index[w.accelerator_classes[0]] for w in snap.pending]
        # All the classes a workload accepts, for the reclaim margin, per class list.
        self._known: dict[tuple[str, ...], tuple[int, ...]] = {}
        # Queues with the same entitlement row share candidate pools: number the rows.
        rows: dict[tuple[bool, ...], int] = {}
        self._ent_id = [rows.setdefault(row, len(rows)) for row in snap.entitled]
        self.run_by_pool: list[list[int]] = [[] for _ in snap.pools]
        for r, p in enumerate(snap.run_pool):
            self.run_by_pool[p].append(r)

    def eligible(self, w: Workload, queue: int) -> list[int]:
        # Keyed by the queue's entitlement row, not the queue: few distinct rows.
        key = (self._ent_id[queue], w.residency, w.accelerator_classes, w.site_preferences)
        pools = self._eligible.get(key)
        if pools is None:
            pools = self._eligible[key] = candidate_pools(self.snap, w)
        return pools

    # -- 2. order -----------------------------------------------------------------

    def run(self) -> CycleResult:
        snap = self.snap
        heads: dict[int, list[int]] = {}
        for i, q in enumerate(snap.pending_queue):
            heads.setdefault(q, []).append(i)
        heap: list[tuple[float, int, int]] = []
        cursor = dict.fromkeys(heads, 0)
        for q in heads:
            heap.append((self._rank(q, heads[q][0]), -snap.queues[q].priority, q))
        heapq.heapify(heap)
        order = self.order
        pending = snap.pending
        first_cls = self._first_cls
        rank = self.history.rank
        alloc = self.state.alloc
        while heap:
            key = heapq.heappop(heap)
            _, prio, q = key
            mine, pos = heads[q], cursor[q]
            while True:
                w = pending[mine[pos]]
                pos += 1
                order.append(w.key)
                self.try_workload(w, q)
                if pos == len(mine):
                    break
                i = mine[pos]
                cls = first_cls[i]
                key = (rank(q, cls, alloc[q][cls], i), prio, q)
                # Stay on this queue while it still ranks first: no heap round trip.
                if heap and heap[0] < key:
                    heapq.heappush(heap, key)
                    break
            cursor[q] = pos
        return self.result()

    def _rank(self, q: int, i: int) -> float:
        cls = self._first_cls[i]
        return self.history.rank(q, cls, self.state.alloc[q][cls], i)

    # -- 3./4. filter and place ---------------------------------------------------

    def try_workload(self, w: Workload, q: int) -> None:
        pools = self.eligible(w, q)
        if not pools:
            return
        # A failed attempt changes nothing. Until the next commit, a workload of the
        # same queue, pools and replica shape that needs at least as many replicas
        # and has no higher priority (fewer victims) must fail too.
        shape = (
            q,
            id(pools),
            w.accelerators_per_replica,
            w.cpu_millis_per_replica,
            w.memory_bytes_per_replica,
            w.required_topology,
        )
        failed = self._failed.get(shape)
        if (
            failed is not None
            and failed[0] == self.commits
            and w.min_replicas >= failed[1]
            and w.priority <= failed[2]
        ):
            return
        best = self.best_fit(w, q, pools)
        if best is not None:
            self.admit(w, q, best[0], best[1])
            return
        if self._may_reclaim(w, q, pools) and self.try_with_victims(w, q, pools, reclaim=True):
            return
        if self._lowest_own_priority(q) < w.priority and self.try_with_victims(
            w, q, pools, reclaim=False
        ):
            return
        self._failed[shape] = (self.commits, w.min_replicas, w.priority)

    def _may_reclaim(self, w: Workload, q: int, pools: list[int]) -> bool:
        """A queue reclaims only while the admission keeps it within its deserved share,
        only once it has been starved for its reclaim delay (hysteresis), and while it is
        still below its share by its margin over all the classes `w` accepts (judged once:
        nothing changes the allocation until the attempt commits)."""
        queue = self.snap.queues[q]
        if not reclaim_ready(queue.starved_since, self.snap.now, queue.reclaim_delay_seconds):
            return False
        margin = queue.reclaim_margin
        if margin > 0 and not starved_in(
            self.snap, self.state.alloc, q, self.classes_of(w), margin
        ):
            return False
        classes = self._pool_classes.get(id(pools))
        if classes is None:
            # Eligible pool lists live as long as the cycle, so their id is a stable key.
            classes = self._pool_classes[id(pools)] = sorted(
                {self.snap.pool_class[p] for p in pools}
            )
        return any(self._within_deserved(q, c, w) for c in classes)

    def _within_deserved(self, q: int, cls: int, w: Workload) -> bool:
        """`deserved_room(q, cls, a) >= min_replicas`, without the divisions: for whole
        numbers floor(x / a) >= m exactly when x >= m * a."""
        need = w.min_replicas * w.accelerators_per_replica
        deserved = self.snap.deserved
        alloc = self.state.alloc
        return all(deserved[x][cls] - alloc[x][cls] >= need for x in self.snap.chains[q])

    def classes_of(self, w: Workload) -> tuple[int, ...]:
        hit = self._known.get(w.accelerator_classes)
        if hit is None:
            hit = self._known[w.accelerator_classes] = known_classes(self.snap, w)
        return hit

    def _lowest_own_priority(self, q: int) -> float:
        """Lowest priority among the queue's preemptible running workloads (inf if none)."""
        if self._lowest_priority is None:
            low: dict[int, float] = {}
            for p in range(len(self.snap.pools)):
                for r in self._static_victims(p):
                    vq = self.snap.run_queue[r]
                    low[vq] = min(low.get(vq, INF), self.snap.running[r].priority)
            self._lowest_priority = low
        return self._lowest_priority.get(q, INF)

    def _cap(self, w: Workload, q: int, pool: int) -> float:
        st = self.state
        a = w.accelerators_per_replica
        cls = self.snap.pool_class[pool]
        return min(st.quota_room(q, cls, a), st.power_room(pool, a))

    def best_fit(self, w: Workload, q: int, pools: list[int]) -> tuple[int, PoolFit] | None:
        """Best pool by (most replicas, topology preference met, static rank)."""
        st = self.state
        best: tuple[int, PoolFit] | None = None
        for p in pools:
            ub = min(st.upper_bound(p, w.accelerators_per_replica), w.replicas)
            if ub < w.min_replicas:
                continue
            if best is not None and (
                ub < best[1].count or (ub == best[1].count and not best[1].topology_missed)
            ):
                continue
            cap = self._cap(w, q, p)
            if min(cap, ub) < w.min_replicas:
                continue
            fit = place_in_pool(st, w, p, cap)
            if fit is None:
                continue
            if (
                best is None
                or fit.count > best[1].count
                or (
                    fit.count == best[1].count
                    and best[1].topology_missed
                    and not fit.topology_missed
                )
            ):
                best = (p, fit)
                if fit.count == w.replicas and not fit.topology_missed:
                    break
        return best

    def admit(self, w: Workload, q: int, pool: int, fit: PoolFit) -> None:
        snap = self.snap
        self.commits += 1
        self.state.claim(w, q, pool, fit.nodes)
        nodes = snap.nodes
        names = tuple([nodes[n].name for n in fit.nodes])
        site = snap.sites[snap.pool_site[pool]].name
        self.admissions.append(Admission(w.key, site, snap.pools[pool].name, names))
        self.admitted.add(w.key)

    # -- 5. reclaim and preemption ------------------------------------------------

    def _static_victims(self, pool: int) -> list[int]:
        """Running workloads of `pool` that may ever be evicted this cycle, in eviction
        order: lowest priority, then the least work lost, then youngest, then key."""
        hit = self._victim_order.get(pool)
        if hit is None:
            snap = self.snap
            now = snap.now
            cands = []
            for r in self.run_by_pool[pool]:
                v = snap.running[r]
                assert v.placement is not None
                vqueue = snap.queues[snap.run_queue[r]]
                started = v.placement.started_at
                if (
                    v.preemptible
                    and now - started >= vqueue.min_runtime_seconds
                    and evictable(
                        v.eviction_times,
                        now,
                        vqueue.max_evictions,
                        vqueue.eviction_window_seconds,
                    )
                ):
                    lost = lost_work(
                        snap.run_accelerators[r], started, now, v.checkpoint_interval_seconds
                    )
                    cands.append((v.priority, lost, -started, v.key, r))
            cands.sort()
            hit = self._victim_order[pool] = [c[4] for c in cands]
        return hit

    def _started_by_bound(self) -> list[bool]:
        """Per running workload: started by its queue's wait bound (reclaim takes it only
        for a workload that has waited its own bound)."""
        if self._bound is None:
            snap = self.snap
            out = []
            for r, v in enumerate(snap.running):
                assert v.placement is not None
                wait = snap.queues[snap.run_queue[r]].max_wait_seconds
                out.append(
                    started_by_wait_bound(
                        v.created_at, v.eviction_times, v.placement.started_at, wait
                    )
                )
            self._bound = out
        return self._bound

    def _own_victims(self, pool: int, q: int) -> list[int]:
        """`_static_victims` of one queue, for priority preemption inside the queue."""
        if self._by_queue is None:
            self._by_queue = {}
            for p in range(len(self.snap.pools)):
                for r in self._static_victims(p):
                    self._by_queue.setdefault((p, self.snap.run_queue[r]), []).append(r)
            running = self.snap.running
            self._own_priorities = {
                key: [running[r].priority for r in rs] for key, rs in self._by_queue.items()
            }
        return self._by_queue.get((pool, q), _NONE)

    def victims(self, w: Workload, q: int, pool: int, reclaim: bool) -> list[int]:
        """Eligible victims in `pool`, in eviction order, each checked as if the previous went."""
        snap = self.snap
        if not reclaim:
            own = self._own_victims(pool, q)
            if not own:
                return own
            # Eviction order starts with the lowest priority: the candidates are a prefix.
            cut = bisect_left(self._own_priorities[(pool, q)], w.priority)
            evicted = self.evicted
            return [r for r in own[:cut] if r not in evicted]
        # What the wait bound started is protected, except from a workload that has
        # itself waited its bound (else a queue that borrows with a long backlog would
        # hold all it runs against every reclaim).
        protect = not waited_bound(
            w.created_at, w.eviction_times, snap.now, snap.queues[q].max_wait_seconds
        )
        # The reclaim list depends only on the queue, the pool, the committed state and
        # that, and a queue's workloads come one after another while they fail: cache it.
        key = (q, pool, self.commits, protect)
        hit = self._reclaim_cache.get(key)
        if hit is not None:
            return hit
        st = self.state
        cls = snap.pool_class[pool]
        mine = set(snap.chains[q])
        bound = self._started_by_bound() if protect else None
        sim: dict[int, float] = {}
        out = []
        ratio = self.history.ratio
        taken: set[int] = set()
        # First the queues above their fair share; then those above their deserved share only:
        # fair shares are per class fleet-wide, so a victim confined by residency to the
        # reclaimer's pool can hold less than its fair share and still have borrowed there.
        for above_fair_share in (True, False):
            for r in self._static_victims(pool):
                if r in taken:
                    continue
                vq = snap.run_queue[r]
                # Work left on a queue that gained children is never reclaimed: its queue
                # shares its ancestors with the children, so no reclaim could be weighed fairly.
                if (
                    vq == q
                    or r in self.evicted
                    or (bound is not None and bound[r])
                    or not snap.queues[vq].reclaimable
                    or not snap.is_leaf[vq]
                ):
                    continue
                # Over time too: take only from a queue that got more of its fair share than
                # the reclaiming one (even when neither has history).
                if ratio[vq][cls] < ratio[q][cls]:
                    continue
                chain = [x for x in snap.chains[vq] if x not in mine]
                alloc = [sim.get(x, st.alloc[x][cls]) for x in chain]
                size = snap.run_accelerators[r]
                if above_fair_share and alloc[0] <= snap.fair_share[vq][cls]:
                    continue
                # Never push the victim (or an ancestor below the common one) under its
                # deserved share: a victim queue left below deserved would reclaim right
                # back (ping-pong).
                if any(a - size < snap.deserved[x][cls] for x, a in zip(chain, alloc, strict=True)):
                    continue
                for x, a in zip(chain, alloc, strict=True):
                    sim[x] = a - size
                out.append(r)
                taken.add(r)
        if len(self._reclaim_cache) > 4096:
            self._reclaim_cache.clear()
        self._reclaim_cache[key] = out
        return out

    def _room_bound(self, w: Workload, pool: int, victims: list[int]) -> int:
        """Upper bound on replicas that fit once `victims` are gone (no node work):
        floor((free + freed) / a) <= floor(free / a) + ceil(freed / a) per node."""
        snap = self.snap
        a = w.accelerators_per_replica
        bound = self.state.upper_bound(pool, a)
        for r in victims:
            v = snap.running[r]
            bound += len(snap.run_nodes[r]) * -(-v.accelerators_per_replica // a)
            if bound >= w.min_replicas:
                break
        return bound

    def try_with_victims(self, w: Workload, q: int, pools: list[int], reclaim: bool) -> bool:
        """Admit `w` in the first of `pools` (its eligible pools) where evicting the
        smallest prefix of victims makes room."""
        snap = self.snap
        st = self.state
        a = w.accelerators_per_replica
        room: dict[int, bool] = {}
        if not reclaim:
            self._own_victims(0, q)  # builds the per-(pool, queue) lists once
            assert self._by_queue is not None
            by_queue = self._by_queue
            # Only pools where the queue runs something evictable can preempt.
            pools = [p for p in pools if (p, q) in by_queue]
        for p in pools:
            cls = snap.pool_class[p]
            if reclaim:
                if cls not in room:
                    room[cls] = self._within_deserved(q, cls, w)
                if not room[cls]:
                    continue
            vs = self.victims(w, q, p, reclaim)
            if not vs or self._room_bound(w, p, vs) < w.min_replicas:
                continue

            # Remove victims in order until the gang fits: the smallest prefix that
            # makes room. The histogram bound skips the exact check while hopeless.
            chosen: list[int] = []
            fit: PoolFit | None = None
            for r in vs:
                st.release_running(r)
                chosen.append(r)
                if st.upper_bound(p, a) < w.min_replicas:
                    continue
                fit = self._fit_for(w, q, p, cls, reclaim)
                if fit is not None:
                    break
            if fit is None:
                for r in reversed(chosen):
                    st.restore_running(r)
                continue
            kept = self._prune(w, q, p, cls, fit, chosen) if reclaim else chosen
            reason = "Reclaimed" if reclaim else "Preempted"
            self.commits += 1
            for r in kept:
                self.evicted.add(r)
                self.evictions.append(Eviction(snap.running[r].key, reason, w.key))
            self.admit(w, q, p, fit)
            return True
        return False

    def _fit_for(self, w: Workload, q: int, p: int, cls: int, reclaim: bool) -> PoolFit | None:
        cap = self._cap(w, q, p)
        if reclaim:
            cap = min(cap, self.state.deserved_room(q, cls, w.accelerators_per_replica))
        if cap < w.min_replicas:
            return None
        return place_in_pool(self.state, w, p, cap)

    def _prune(
        self, w: Workload, q: int, p: int, cls: int, fit: PoolFit, chosen: list[int]
    ) -> list[int]:
        """Give back victims that free none of the chosen nodes, if limits still hold."""
        snap = self.snap
        st = self.state
        used = set(fit.nodes)
        need = fit.count * w.accelerators_per_replica
        site = snap.pool_site[p]
        extra_power = need * snap.pools[p].watts_per_accelerator
        kept = []
        for r in reversed(chosen):
            if used.intersection(snap.run_nodes[r]):
                kept.append(r)
                continue
            st.restore_running(r)
            ok = st.power[site] + extra_power <= snap.power_budget[site] and all(
                st.alloc[x][cls] + need <= min(snap.limit[x][cls], snap.deserved[x][cls])
                for x in snap.chains[q]
            )
            if not ok:
                st.release_running(r)
                kept.append(r)
        kept.reverse()
        return kept

    # -- 6. result ----------------------------------------------------------------

    def result(self) -> CycleResult:
        snap = self.snap
        st = self.state
        admitted = self.admitted
        pending_left: dict[str, Workload] = {}
        positions: dict[str, int] = {}
        # Pending workloads are sorted by queue first: count within each run.
        last, seen = -1, 0
        pending_classes: set[tuple[int, tuple[int, ...]]] = set()
        classes_of = self.classes_of
        for w, q in zip(snap.pending, snap.pending_queue, strict=True):
            key = w.key
            if key in admitted:
                continue
            pending_left[key] = w
            pending_classes.add((q, classes_of(w)))
            if q != last:
                last, seen = q, 0
            seen += 1
            positions[key] = seen
        return CycleResult(
            admissions=self.admissions,
            evictions=self.evictions,
            verdicts=VerdictTable(snap, st, pending_left),
            fair_shares={
                q.name: dict(zip(snap.classes, snap.fair_share[i], strict=True))
                for i, q in enumerate(snap.queues)
            },
            queue_order=self.order,
            positions=positions,
            allocated={
                q.name: dict(zip(snap.classes, st.alloc[i], strict=True))
                for i, q in enumerate(snap.queues)
            },
            starved=starved_queues(snap, st.alloc, pending_classes),
        )


def schedule(snapshot: Snapshot) -> CycleResult:
    """Run one pure cycle over `snapshot` and return its decisions."""
    return Cycle(snapshot).run()


__all__ = ["Cycle", "History", "candidate_pools", "schedule", "starved_queues"]
