"""The immutable snapshot one cycle works on: objects indexed once, numbers in arrays.

Nodes are sorted by (pool, topology values, name), so every pool and every
topology domain is a contiguous slice of the node arrays; the cycle then works
on slices (views) instead of per-node Python loops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpufleet.core.fairshare import INF, fair_shares
from gpufleet.core.model import ModelError, Node, Pool, Queue, Site, Workload

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class PoolLayout:
    """A pool's node slice and, per topology level, where its domains start."""

    start: int
    end: int
    # domain_starts[level] holds slice-relative start offsets of the level's domains.
    domain_starts: tuple[IntArray, ...]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything one cycle reads. Build it with `Snapshot.build`; never mutate it."""

    now: float
    sites: tuple[Site, ...]
    pools: tuple[Pool, ...]
    nodes: tuple[Node, ...]  # sorted: pool, topology, name
    queues: tuple[Queue, ...]
    running: tuple[Workload, ...]
    pending: tuple[Workload, ...]  # sorted: queue, -priority, created_at, key
    classes: tuple[str, ...]
    site_index: dict[str, int]
    pool_index: dict[str, int]
    node_index: dict[str, int]
    queue_index: dict[str, int]
    class_index: dict[str, int]
    # sites
    site_ok: tuple[bool, ...]  # schedulable and connected
    power_budget: tuple[float, ...]  # inf when unlimited
    power_used: tuple[float, ...]
    # pools
    pool_site: tuple[int, ...]
    pool_class: tuple[int, ...]
    layouts: tuple[PoolLayout, ...]
    # nodes: free after running workloads (may be negative if capacity shrank)
    node_ready: BoolArray
    acc_cap: IntArray
    acc_free: IntArray
    cpu_free: IntArray
    mem_free: IntArray
    pods_free: IntArray
    # queues ([queue][class]); allocated includes descendants
    parents: tuple[int, ...]
    chains: tuple[tuple[int, ...], ...]  # the queue itself, then its ancestors
    is_leaf: tuple[bool, ...]
    deserved: tuple[tuple[float, ...], ...]
    limit: tuple[tuple[float, ...], ...]
    allocated: tuple[tuple[int, ...], ...]
    fair_share: tuple[tuple[float, ...], ...]
    entitled: tuple[tuple[bool, ...], ...]  # [queue][site], ancestors included
    # running workloads
    run_pool: tuple[int, ...]
    run_queue: tuple[int, ...]
    run_nodes: tuple[tuple[int, ...], ...]  # known nodes only, one per replica
    run_accelerators: tuple[int, ...]  # total accelerators held (all replicas)
    pending_queue: tuple[int, ...]

    @classmethod
    def build(
        cls,
        sites: Iterable[Site],
        pools: Iterable[Pool],
        nodes: Iterable[Node],
        queues: Iterable[Queue],
        workloads: Iterable[Workload],
        now: float,
    ) -> Snapshot:
        """Index and validate the objects; subtract running workloads from node capacity."""
        site_t = tuple(sorted(sites, key=lambda s: s.name))
        site_index = _index("Site", [s.name for s in site_t])
        pool_t = tuple(sorted(pools, key=lambda p: p.name))
        pool_index = _index("Pool", [p.name for p in pool_t])
        for pool in pool_t:
            if pool.site not in site_index:
                raise ModelError("Pool", pool.name, "site", f"names unknown site {pool.site!r}")
        node_list = list(nodes)
        for n in node_list:
            if n.pool not in pool_index:
                raise ModelError("Node", n.name, "pool", f"names unknown pool {n.pool!r}")
            keys = pool_t[pool_index[n.pool]].topology_keys
            if len(n.topology) != len(keys):
                raise ModelError(
                    "Node",
                    n.name,
                    "topology",
                    f"must hold one value per topology key of pool {n.pool!r} {keys!r},"
                    f" got {n.topology!r}",
                )
        node_t = tuple(sorted(node_list, key=lambda n: (pool_index[n.pool], n.topology, n.name)))
        node_index = _index("Node", [n.name for n in node_t])
        queue_t = tuple(sorted(queues, key=lambda q: q.name))
        queue_index = _index("Queue", [q.name for q in queue_t])
        parents = tuple(_parent_index(q, queue_index) for q in queue_t)
        chains = _chains(queue_t, parents)
        is_leaf = [True] * len(queue_t)
        for p in parents:
            if p >= 0:
                is_leaf[p] = False

        work = list(workloads)
        work_keys = [w.key for w in work]
        if len(set(work_keys)) != len(work_keys):
            _index("Workload", sorted(work_keys))  # names the first duplicate in key order
        for w in work:
            if w.queue not in queue_index:
                raise ModelError("Workload", w.key, "queue", f"names unknown queue {w.queue!r}")
            if not is_leaf[queue_index[w.queue]]:
                raise ModelError(
                    "Workload", w.key, "queue", f"must name a leaf queue, {w.queue!r} has children"
                )
        running = tuple(sorted((w for w in work if w.placement is not None), key=_key))
        pending = tuple(
            sorted(
                (w for w in work if w.placement is None),
                key=lambda w: (queue_index[w.queue], -w.priority, w.created_at, w.key),
            )
        )

        class_names = {p.accelerator_class for p in pool_t}
        for queue in queue_t:
            class_names.update(queue.deserved, queue.limit, queue.over_quota_weight)
        for accepted in {w.accelerator_classes for w in work}:
            class_names.update(accepted)
        classes = tuple(sorted(class_names))
        class_index = {c: i for i, c in enumerate(classes)}

        n_nodes = len(node_t)
        node_ready = np.fromiter((n.ready for n in node_t), dtype=np.bool_, count=n_nodes)
        acc_cap = np.fromiter((n.accelerators for n in node_t), dtype=np.int64, count=n_nodes)
        acc_free = acc_cap.copy()
        cpu_free = np.fromiter((n.cpu_millis for n in node_t), dtype=np.int64, count=n_nodes)
        mem_free = np.fromiter((n.memory_bytes for n in node_t), dtype=np.int64, count=n_nodes)
        pods_free = np.fromiter((n.pods for n in node_t), dtype=np.int64, count=n_nodes)

        pool_site = tuple(site_index[p.site] for p in pool_t)
        pool_class = tuple(class_index[p.accelerator_class] for p in pool_t)
        power_used = [0.0] * len(site_t)
        n_queues, n_classes = len(queue_t), len(classes)
        allocated = [[0] * n_classes for _ in range(n_queues)]
        run_pool: list[int] = []
        run_queue: list[int] = []
        run_nodes: list[tuple[int, ...]] = []
        run_acc: list[int] = []
        usage: list[tuple[int, int, int]] = []  # (node, a, count) flattened later
        cpu_use: dict[int, int] = {}
        mem_use: dict[int, int] = {}
        for w in running:
            assert w.placement is not None
            pl = w.placement
            if pl.pool not in pool_index:
                raise ModelError(
                    "Workload", w.key, "placement.pool", f"names unknown pool {pl.pool!r}"
                )
            p = pool_index[pl.pool]
            if pool_t[p].site != pl.site:
                raise ModelError(
                    "Workload",
                    w.key,
                    "placement.site",
                    f"must be the site of pool {pl.pool!r} ({pool_t[p].site!r}), got {pl.site!r}",
                )
            # A node that left the cluster took the workload's usage with it.
            idx = tuple(node_index[n] for n in pl.nodes if n in node_index)
            a = w.accelerators_per_replica
            total = a * len(pl.nodes)
            run_pool.append(p)
            run_queue.append(queue_index[w.queue])
            run_nodes.append(idx)
            run_acc.append(total)
            power_used[pool_site[p]] += total * pool_t[p].watts_per_accelerator
            c = pool_class[p]
            for q in chains[queue_index[w.queue]]:
                allocated[q][c] += total
            for i in idx:
                usage.append((i, a, 1))
                cpu_use[i] = cpu_use.get(i, 0) + w.cpu_millis_per_replica
                mem_use[i] = mem_use.get(i, 0) + w.memory_bytes_per_replica
        if usage:
            u = np.asarray(usage, dtype=np.int64)
            np.subtract.at(acc_free, u[:, 0], u[:, 1])
            np.subtract.at(pods_free, u[:, 0], u[:, 2])
        for i, v in cpu_use.items():
            cpu_free[i] -= v
        for i, v in mem_use.items():
            mem_free[i] -= v

        layouts = _layouts(pool_t, node_t, pool_index)
        site_ok = tuple(s.schedulable and s.connected for s in site_t)
        power_budget = tuple(
            INF if s.power_budget_watts is None else float(s.power_budget_watts) for s in site_t
        )
        capacity = [0.0] * n_classes
        connected = [s.connected for s in site_t]
        for p, lay in enumerate(layouts):
            if connected[pool_site[p]]:
                sl = slice(lay.start, lay.end)
                capacity[pool_class[p]] += float(acc_cap[sl][node_ready[sl]].sum())

        deserved = [[float(x.deserved.get(c, 0)) for c in classes] for x in queue_t]
        limit = [[float(x.limit.get(c, INF)) for c in classes] for x in queue_t]
        weight = [[x.weight(c) for c in classes] for x in queue_t]
        demand = [[float(x) for x in row] for row in allocated]
        for w in pending:
            q = queue_index[w.queue]
            # Pending demand counts against the workload's first (preferred) class.
            demand[q][class_index[w.accelerator_classes[0]]] += (
                w.replicas * w.accelerators_per_replica
            )
        shares = fair_shares(parents, deserved, limit, weight, demand, capacity)

        entitled = tuple(
            tuple(_entitled(queue_t, chains[i], s) for s in site_t) for i in range(n_queues)
        )
        return cls(
            now=now,
            sites=site_t,
            pools=pool_t,
            nodes=node_t,
            queues=queue_t,
            running=running,
            pending=pending,
            classes=classes,
            site_index=site_index,
            pool_index=pool_index,
            node_index=node_index,
            queue_index=queue_index,
            class_index=class_index,
            site_ok=site_ok,
            power_budget=power_budget,
            power_used=tuple(power_used),
            pool_site=pool_site,
            pool_class=pool_class,
            layouts=layouts,
            node_ready=node_ready,
            acc_cap=acc_cap,
            acc_free=acc_free,
            cpu_free=cpu_free,
            mem_free=mem_free,
            pods_free=pods_free,
            parents=parents,
            chains=chains,
            is_leaf=tuple(is_leaf),
            deserved=tuple(tuple(r) for r in deserved),
            limit=tuple(tuple(r) for r in limit),
            allocated=tuple(tuple(r) for r in allocated),
            fair_share=tuple(tuple(r) for r in shares),
            entitled=entitled,
            run_pool=tuple(run_pool),
            run_queue=tuple(run_queue),
            run_nodes=tuple(run_nodes),
            run_accelerators=tuple(run_acc),
            pending_queue=tuple(queue_index[w.queue] for w in pending),
        )


def _key(w: Workload) -> str:
    return w.key


def _index(kind: str, names: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in out:
            raise ModelError(kind, name, "name", "must be unique, it appears twice")
        out[name] = i
    return out


def _parent_index(q: Queue, index: dict[str, int]) -> int:
    if q.parent is None:
        return -1
    if q.parent not in index:
        raise ModelError("Queue", q.name, "parent", f"names unknown queue {q.parent!r}")
    return index[q.parent]


def _chains(queues: tuple[Queue, ...], parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    out = []
    for q in range(len(queues)):
        chain = [q]
        p = parents[q]
        while p >= 0:
            if p in chain:
                raise ModelError("Queue", queues[q].name, "parent", "must not form a cycle")
            chain.append(p)
            p = parents[p]
        out.append(tuple(chain))
    return tuple(out)


def _entitled(queues: tuple[Queue, ...], chain: tuple[int, ...], site: Site) -> bool:
    for q in chain:
        allowed_sites = queues[q].allowed_sites
        allowed_jur = queues[q].allowed_jurisdictions
        if allowed_sites is not None and site.name not in allowed_sites:
            return False
        if allowed_jur is not None and site.jurisdiction not in allowed_jur:
            return False
    return True


def _layouts(
    pools: tuple[Pool, ...], nodes: tuple[Node, ...], pool_index: dict[str, int]
) -> tuple[PoolLayout, ...]:
    n_pools = len(pools)
    pool_of = np.fromiter((pool_index[n.pool] for n in nodes), dtype=np.int64, count=len(nodes))
    bounds = np.searchsorted(pool_of, np.arange(n_pools + 1))
    out = []
    for p in range(n_pools):
        start, end = int(bounds[p]), int(bounds[p + 1])
        n_levels = len(pools[p].topology_keys)
        # A new domain of every level from the first topology value that differs.
        levels: list[list[int]] = [[0] for _ in range(n_levels)] if end > start else []
        for i in range(start + 1, end):
            before, here = nodes[i - 1].topology, nodes[i].topology
            if before != here:
                first = next(k for k in range(n_levels) if before[k] != here[k])
                for level in range(first, n_levels):
                    levels[level].append(i - start)
        out.append(
            PoolLayout(
                start,
                end,
                tuple(np.asarray(starts, dtype=np.int64) for starts in levels)
                if end > start
                else tuple(np.asarray([], dtype=np.int64) for _ in range(n_levels)),
            )
        )
    return tuple(out)
