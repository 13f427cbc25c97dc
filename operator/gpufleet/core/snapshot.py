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

from gpufleet.core.fairness import waiting_since
from gpufleet.core.fairshare import INF, fair_shares
from gpufleet.core.model import (
    ModelError,
    Node,
    Pool,
    Queue,
    Site,
    Workload,
    leaf_queue_violation,
    queues_with_children,
)

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
    pending: tuple[Workload, ...]  # sorted: queue, -priority, waiting_since, key
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
        """Index and validate the objects; subtract running workloads from node capacity.

         1. sites and pools, each pool at a known site;
         2. nodes, sorted so that pools and topology domains are slices;
         3. the queue tree: parents known, no cycles;
         4. workloads on known queues, split into running (on known pools) and pending, the
            pending ones on leaf queues only;
         5. every accelerator class named, and each pool's;
         6. what running workloads hold, per workload, site and queue;
         7. node arrays: capacity, and what running replicas leave free;
         8. each pool's slice of the nodes and its topology domains;
         9. the accelerators fair shares divide, per class;
        10. quota tables and fair shares.
        Steps 1-4 raise `ModelError` at the first inconsistency, in this order.
        """
        places = _places(sites, pools)  # 1
        node_t, node_index = _sorted_nodes(nodes, places)  # 2
        tree = _queue_tree(queues)  # 3
        work = _split_work(workloads, tree, places)  # 4
        classes = _classes(places.pools, tree.queues, work.accepted)  # 5
        class_index = {c: i for i, c in enumerate(classes)}
        pool_class = tuple(class_index[p.accelerator_class] for p in places.pools)
        held = _held(work.running, places, pool_class, tree, node_index, len(classes))  # 6
        free = _node_arrays(node_t, _node_use(work.running, held.nodes))  # 7
        layouts = _layouts(places.pools, node_t, places.pool_index)  # 8
        capacity = _class_capacity(places, pool_class, layouts, free, len(classes))  # 9
        shares = _queue_tables(tree, classes, class_index, held, work.pending, capacity)  # 10
        return cls(
            now=now,
            sites=places.sites,
            pools=places.pools,
            nodes=node_t,
            queues=tree.queues,
            running=work.running,
            pending=work.pending,
            classes=classes,
            site_index=places.site_index,
            pool_index=places.pool_index,
            node_index=node_index,
            queue_index=tree.index,
            class_index=class_index,
            site_ok=tuple(s.schedulable and s.connected for s in places.sites),
            power_budget=tuple(
                INF if s.power_budget_watts is None else float(s.power_budget_watts)
                for s in places.sites
            ),
            power_used=held.power_used,
            pool_site=places.pool_site,
            pool_class=pool_class,
            layouts=layouts,
            node_ready=free.ready,
            acc_cap=free.acc_cap,
            acc_free=free.acc_free,
            cpu_free=free.cpu_free,
            mem_free=free.mem_free,
            pods_free=free.pods_free,
            parents=tree.parents,
            chains=tree.chains,
            is_leaf=tuple(q.name not in tree.with_children for q in tree.queues),
            deserved=shares.deserved,
            limit=shares.limit,
            allocated=tuple(tuple(r) for r in held.allocated),
            fair_share=shares.fair_share,
            entitled=tuple(
                tuple(_entitled(tree.queues, chain, s) for s in places.sites)
                for chain in tree.chains
            ),
            run_pool=held.pool,
            run_queue=held.queue,
            run_nodes=held.nodes,
            run_accelerators=held.accelerators,
            pending_queue=tuple(tree.index[w.queue] for w in work.pending),
        )


def _key(w: Workload) -> str:
    return w.key


# -- the steps of Snapshot.build ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Places:
    """Sites and pools sorted by name, indexed, and each pool's site."""

    sites: tuple[Site, ...]
    site_index: dict[str, int]
    pools: tuple[Pool, ...]
    pool_index: dict[str, int]
    pool_site: tuple[int, ...]


def _places(sites: Iterable[Site], pools: Iterable[Pool]) -> _Places:
    site_t = tuple(sorted(sites, key=lambda s: s.name))
    site_index = _index("Site", [s.name for s in site_t])
    pool_t = tuple(sorted(pools, key=lambda p: p.name))
    pool_index = _index("Pool", [p.name for p in pool_t])
    for pool in pool_t:
        if pool.site not in site_index:
            raise ModelError("Pool", pool.name, "site", f"names unknown site {pool.site!r}")
    pool_site = tuple(site_index[p.site] for p in pool_t)
    return _Places(site_t, site_index, pool_t, pool_index, pool_site)


def _sorted_nodes(
    nodes: Iterable[Node], places: _Places
) -> tuple[tuple[Node, ...], dict[str, int]]:
    """Nodes sorted by (pool, topology, name), so pools and domains are slices; their index."""
    node_list = list(nodes)
    for n in node_list:
        if n.pool not in places.pool_index:
            raise ModelError("Node", n.name, "pool", f"names unknown pool {n.pool!r}")
        keys = places.pools[places.pool_index[n.pool]].topology_keys
        if len(n.topology) != len(keys):
            raise ModelError(
                "Node",
                n.name,
                "topology",
                f"must hold one value per topology key of pool {n.pool!r} {keys!r},"
                f" got {n.topology!r}",
            )
    pool_index = places.pool_index
    node_t = tuple(sorted(node_list, key=lambda n: (pool_index[n.pool], n.topology, n.name)))
    return node_t, _index("Node", [n.name for n in node_t])


@dataclass(frozen=True, slots=True)
class _QueueTree:
    """Queues sorted by name with their parents (-1 for none) and chains up to the root."""

    queues: tuple[Queue, ...]
    index: dict[str, int]
    parents: tuple[int, ...]
    chains: tuple[tuple[int, ...], ...]  # the queue itself, then its ancestors
    with_children: frozenset[str]


def _queue_tree(queues: Iterable[Queue]) -> _QueueTree:
    queue_t = tuple(sorted(queues, key=lambda q: q.name))
    index = _index("Queue", [q.name for q in queue_t])
    parents = tuple(_parent_index(q, index) for q in queue_t)
    chains = _chains(queue_t, parents)
    return _QueueTree(queue_t, index, parents, chains, queues_with_children(queue_t))


@dataclass(frozen=True, slots=True)
class _Work:
    running: tuple[Workload, ...]  # sorted by key
    pending: tuple[Workload, ...]  # sorted: queue, -priority, waiting_since, key
    accepted: set[tuple[str, ...]]  # the workloads' accelerator_classes


def _split_work(workloads: Iterable[Workload], tree: _QueueTree, places: _Places) -> _Work:
    """Validate the workloads against the queues and pools; split running from pending."""
    work = list(workloads)
    work_keys = [w.key for w in work]
    if len(set(work_keys)) != len(work_keys):
        _index("Workload", sorted(work_keys))  # names the first duplicate in key order
    for w in work:
        if w.queue not in tree.index:
            raise ModelError("Workload", w.key, "queue", f"names unknown queue {w.queue!r}")
        # Running work keeps running where a child queue was added under its queue: it counts
        # in that queue and its ancestors, is never a reclaim victim, and nothing new is
        # admitted to the queue (docs/scheduling.md, "Queues that gain children").
        violation = leaf_queue_violation(w.key, w.queue, tree.with_children)
        if violation is not None and w.placement is None:
            raise violation
    running = tuple(sorted((w for w in work if w.placement is not None), key=_key))
    for w in running:
        _check_placement(w, places)
    queue_index = tree.index
    # In its queue, an evicted workload waits again from its eviction (`waiting_since`).
    pending = tuple(
        sorted(
            (w for w in work if w.placement is None),
            key=lambda w: (
                queue_index[w.queue],
                -w.priority,
                waiting_since(w.created_at, w.eviction_times),
                w.key,
            ),
        )
    )
    return _Work(running, pending, {w.accelerator_classes for w in work})


def _check_placement(w: Workload, places: _Places) -> None:
    pl = w.placement
    assert pl is not None
    if pl.pool not in places.pool_index:
        raise ModelError("Workload", w.key, "placement.pool", f"names unknown pool {pl.pool!r}")
    pool = places.pools[places.pool_index[pl.pool]]
    if pool.site != pl.site:
        raise ModelError(
            "Workload",
            w.key,
            "placement.site",
            f"must be the site of pool {pl.pool!r} ({pool.site!r}), got {pl.site!r}",
        )


def _classes(
    pools: tuple[Pool, ...], queues: tuple[Queue, ...], accepted: set[tuple[str, ...]]
) -> tuple[str, ...]:
    """Every accelerator class a pool, queue or workload names, sorted."""
    class_names = {p.accelerator_class for p in pools}
    for queue in queues:
        class_names.update(queue.deserved, queue.limit, queue.over_quota_weight)
    for classes in accepted:
        class_names.update(classes)
    return tuple(sorted(class_names))


@dataclass(frozen=True, slots=True)
class _Held:
    """What the running workloads hold: per workload, per site and per queue."""

    pool: tuple[int, ...]
    queue: tuple[int, ...]
    nodes: tuple[tuple[int, ...], ...]  # known nodes only, one per replica
    accelerators: tuple[int, ...]  # total accelerators held (all replicas)
    power_used: tuple[float, ...]  # per site
    allocated: list[list[int]]  # [queue][class], descendants included
    direct: list[list[int]]  # [queue][class], the queue's own workloads only


def _held(
    running: tuple[Workload, ...],
    places: _Places,
    pool_class: tuple[int, ...],
    tree: _QueueTree,
    node_index: dict[str, int],
    n_classes: int,
) -> _Held:
    pools: list[int] = []
    queues: list[int] = []
    nodes: list[tuple[int, ...]] = []
    accelerators: list[int] = []
    power_used = [0.0] * len(places.sites)
    allocated = [[0] * n_classes for _ in range(len(tree.queues))]
    direct = [[0] * n_classes for _ in range(len(tree.queues))]
    for w in running:
        assert w.placement is not None
        pl = w.placement
        p = places.pool_index[pl.pool]
        # A node that left the cluster took the workload's usage with it.
        idx = tuple(node_index[n] for n in pl.nodes if n in node_index)
        total = w.accelerators_per_replica * len(pl.nodes)
        pools.append(p)
        queues.append(tree.index[w.queue])
        nodes.append(idx)
        accelerators.append(total)
        power_used[places.pool_site[p]] += total * places.pools[p].watts_per_accelerator
        c = pool_class[p]
        for q in tree.chains[tree.index[w.queue]]:
            allocated[q][c] += total
        direct[tree.index[w.queue]][c] += total
    return _Held(
        tuple(pools),
        tuple(queues),
        tuple(nodes),
        tuple(accelerators),
        tuple(power_used),
        allocated,
        direct,
    )


@dataclass(frozen=True, slots=True)
class _NodeUse:
    """What running replicas use on the nodes that are still there."""

    replicas: list[tuple[int, int, int]]  # (node, accelerators, pods), one per replica
    cpu: dict[int, int]  # by node
    memory: dict[int, int]  # by node


def _node_use(running: tuple[Workload, ...], nodes: tuple[tuple[int, ...], ...]) -> _NodeUse:
    """`nodes` holds each running workload's known nodes (`_Held.nodes`)."""
    replicas: list[tuple[int, int, int]] = []
    cpu: dict[int, int] = {}
    memory: dict[int, int] = {}
    for w, idx in zip(running, nodes, strict=True):
        for i in idx:
            replicas.append((i, w.accelerators_per_replica, 1))
            cpu[i] = cpu.get(i, 0) + w.cpu_millis_per_replica
            memory[i] = memory.get(i, 0) + w.memory_bytes_per_replica
    return _NodeUse(replicas, cpu, memory)


@dataclass(frozen=True, slots=True)
class _NodeArrays:
    """Node capacity, and what is free after running workloads (negative if capacity shrank)."""

    ready: BoolArray
    acc_cap: IntArray
    acc_free: IntArray
    cpu_free: IntArray
    mem_free: IntArray
    pods_free: IntArray


def _node_arrays(node_t: tuple[Node, ...], use: _NodeUse) -> _NodeArrays:
    n_nodes = len(node_t)
    ready = np.fromiter((n.ready for n in node_t), dtype=np.bool_, count=n_nodes)
    acc_cap = np.fromiter((n.accelerators for n in node_t), dtype=np.int64, count=n_nodes)
    acc_free = acc_cap.copy()
    cpu_free = np.fromiter((n.cpu_millis for n in node_t), dtype=np.int64, count=n_nodes)
    mem_free = np.fromiter((n.memory_bytes for n in node_t), dtype=np.int64, count=n_nodes)
    pods_free = np.fromiter((n.pods for n in node_t), dtype=np.int64, count=n_nodes)
    if use.replicas:
        u = np.asarray(use.replicas, dtype=np.int64)
        np.subtract.at(acc_free, u[:, 0], u[:, 1])
        np.subtract.at(pods_free, u[:, 0], u[:, 2])
    for i, v in use.cpu.items():
        cpu_free[i] -= v
    for i, v in use.memory.items():
        mem_free[i] -= v
    return _NodeArrays(ready, acc_cap, acc_free, cpu_free, mem_free, pods_free)


def _class_capacity(
    places: _Places,
    pool_class: tuple[int, ...],
    layouts: tuple[PoolLayout, ...],
    free: _NodeArrays,
    n_classes: int,
) -> list[float]:
    """Accelerators of ready nodes at connected sites, per class: what fair shares divide."""
    capacity = [0.0] * n_classes
    connected = [s.connected for s in places.sites]
    for p, lay in enumerate(layouts):
        if connected[places.pool_site[p]]:
            sl = slice(lay.start, lay.end)
            capacity[pool_class[p]] += float(free.acc_cap[sl][free.ready[sl]].sum())
    return capacity


@dataclass(frozen=True, slots=True)
class _QueueTables:
    """[queue][class]: quota, and the fair shares worked out from it."""

    deserved: tuple[tuple[float, ...], ...]
    limit: tuple[tuple[float, ...], ...]
    fair_share: tuple[tuple[float, ...], ...]


def _queue_tables(
    tree: _QueueTree,
    classes: tuple[str, ...],
    class_index: dict[str, int],
    held: _Held,
    pending: tuple[Workload, ...],
    capacity: list[float],
) -> _QueueTables:
    deserved = [[float(x.deserved.get(c, 0)) for c in classes] for x in tree.queues]
    limit = [[float(x.limit.get(c, INF)) for c in classes] for x in tree.queues]
    weight = [[x.weight(c) for c in classes] for x in tree.queues]
    # A leaf's demand starts from what it holds; a queue with children from what it holds
    # itself (running work from before its children came), its children's added by fair_shares.
    demand = [
        [float(x) for x in (held.direct[q] if x_q.name in tree.with_children else row)]
        for q, (x_q, row) in enumerate(zip(tree.queues, held.allocated, strict=True))
    ]
    for w in pending:
        q = tree.index[w.queue]
        # Pending demand counts against the workload's first (preferred) class.
        demand[q][class_index[w.accelerator_classes[0]]] += w.replicas * w.accelerators_per_replica
    shares = fair_shares(tree.parents, deserved, limit, weight, demand, capacity)
    return _QueueTables(
        tuple(tuple(r) for r in deserved),
        tuple(tuple(r) for r in limit),
        tuple(tuple(r) for r in shares),
    )


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
