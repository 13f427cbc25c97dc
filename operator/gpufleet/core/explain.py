"""Per-site verdicts for workloads left pending: the rule that stopped them and the
nearest change that would let them run.

Verdicts are a pure function of the cycle's final state, so they are computed
on first access: the operator reads a few thousand per cycle, the benchmark
none, and 100,000 pending workloads times sites never cost a cycle. What a pool
holds for a replica shape is computed once per table and shared by every
workload of that shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from gpufleet.core.cyclestate import CycleState
from gpufleet.core.fairshare import INF
from gpufleet.core.model import Site, SiteVerdict, Workload
from gpufleet.core.placement import domain_sums, topology_level
from gpufleet.core.snapshot import IntArray, Snapshot

# How far an attempt got in a pool; the furthest pool speaks for its site.
_STAGES = (
    "QuotaLimitReached",
    "PowerBudgetExceeded",
    "Insufficient",
    "TopologyUnsatisfiable",
    "Fits",
)


@dataclass(frozen=True, slots=True)
class _PoolVerdict:
    stage: int
    rule: str
    message: str
    nearest: str | None


def _replicas(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def _fewer(site: str, w: Workload, fits: int) -> str:
    return f"fits at {site} with {_replicas(w.replicas - fits).replace(' ', ' fewer ', 1)}" + (
        f" (min_replicas {fits})"
    )


class _Rooms:
    """What the final state holds for a replica shape in a pool, computed once per
    (pool, shape): the verdicts of thousands of workloads share a few shapes."""

    def __init__(self, snap: Snapshot, st: CycleState) -> None:
        self.snap = snap
        self.st = st
        self._fits: dict[tuple[int, int, int, int], IntArray] = {}
        self._totals: dict[tuple[int, int, int, int], tuple[int, int, int]] = {}
        self._domains: dict[tuple[int, int, int, int, int], int] = {}

    @staticmethod
    def _key(p: int, w: Workload) -> tuple[int, int, int, int]:
        return (p, w.accelerators_per_replica, w.cpu_millis_per_replica, w.memory_bytes_per_replica)

    def fit(self, p: int, w: Workload) -> IntArray:
        key = self._key(p, w)
        f = self._fits.get(key)
        if f is None:
            lay = self.snap.layouts[p]
            f = self._fits[key] = self.st.fit(lay.start, lay.end, w)
        return f

    def stage_totals(self, p: int, w: Workload) -> tuple[int, int, int]:
        """Replicas the pool holds counting accelerators only, then also CPU, then
        also memory (pods come last: the full fit)."""
        key = self._key(p, w)
        hit = self._totals.get(key)
        if hit is None:
            lay = self.snap.layouts[p]
            st, start, end = self.st, lay.start, lay.end
            f = (st.acc[start:end] // w.accelerators_per_replica).clip(0) * st.ready_i[start:end]
            acc_only = int(f.sum())
            if w.cpu_millis_per_replica:
                f = f.clip(max=(st.cpu[start:end] // w.cpu_millis_per_replica).clip(0))
            with_cpu = int(f.sum())
            if w.memory_bytes_per_replica:
                f = f.clip(max=(st.mem[start:end] // w.memory_bytes_per_replica).clip(0))
            hit = self._totals[key] = (acc_only, with_cpu, int(f.sum()))
        return hit

    def best_domain(self, p: int, w: Workload, level: int) -> int:
        """Replicas the roomiest domain of a topology level holds."""
        key = (*self._key(p, w), level)
        hit = self._domains.get(key)
        if hit is None:
            starts = self.snap.layouts[p].domain_starts[level]
            hit = self._domains[key] = int(domain_sums(self.fit(p, w), starts).max())
        return hit


def pool_verdict(
    snap: Snapshot, st: CycleState, w: Workload, queue: int, p: int, rooms: _Rooms
) -> _PoolVerdict:
    """How far the workload's minimum gets in pool `p`: its queue's quota, the site's
    power, room on the nodes, then the required topology. The first stage it fails
    speaks; a workload that passes them all fits (room appeared after its turn)."""
    kmin = w.min_replicas
    a = w.accelerators_per_replica
    if st.quota_room(queue, snap.pool_class[p], a) < kmin:
        return _quota_verdict(snap, st, w, queue, p)
    power = st.power_room(p, a)
    if power < kmin:
        return _power_verdict(snap, st, w, p, power)
    total = int(rooms.fit(p, w).sum())
    if total < kmin:
        return _room_verdict(snap, w, p, total, rooms)
    if w.required_topology is not None:
        short = _topology_verdict(snap, w, p, total, w.required_topology, rooms)
        if short is not None:
            return short
    return _PoolVerdict(
        4,
        "Fits",
        f"room for the workload appeared in pool {snap.pools[p].name} after its turn",
        "none needed: it is considered again next cycle",
    )


def _quota_verdict(snap: Snapshot, st: CycleState, w: Workload, queue: int, p: int) -> _PoolVerdict:
    """Stage 0: the limited queue on the chain with the least room left is the binding one."""
    pool = snap.pools[p]
    cls = snap.pool_class[p]
    need = w.min_replicas * w.accelerators_per_replica
    binding = min(
        (x for x in snap.chains[queue] if snap.limit[x][cls] != INF),
        key=lambda x: snap.limit[x][cls] - st.alloc[x][cls],
    )
    left = int(snap.limit[binding][cls] - st.alloc[binding][cls])
    name = snap.queues[binding].name
    return _PoolVerdict(
        0,
        "QuotaLimitReached",
        f"queue {name} has {max(left, 0)} {pool.accelerator_class} accelerators left"
        f" under its limit of {int(snap.limit[binding][cls])}; {need} needed",
        f"raise the {pool.accelerator_class} limit of queue {name} by {need - max(left, 0)}",
    )


def _power_verdict(
    snap: Snapshot, st: CycleState, w: Workload, p: int, power: float
) -> _PoolVerdict:
    """Stage 1: the site's power budget holds `power` replicas, fewer than the minimum."""
    pool = snap.pools[p]
    s = snap.pool_site[p]
    site = snap.sites[s].name
    kmin = w.min_replicas
    left_w = snap.power_budget[s] - st.power[s]
    need_w = kmin * w.accelerators_per_replica * pool.watts_per_accelerator
    nearest = (
        _fewer(site, w, int(power))
        if power >= 1
        else f"raise the power budget of {site} by {need_w - left_w:.0f} W"
    )
    return _PoolVerdict(
        1,
        "PowerBudgetExceeded",
        f"site {site} has {max(left_w, 0):.0f} W of its power budget left;"
        f" {kmin} replicas in pool {pool.name} need {need_w:.0f} W",
        nearest,
    )


def _room_verdict(snap: Snapshot, w: Workload, p: int, total: int, rooms: _Rooms) -> _PoolVerdict:
    """Stage 2: the pool's nodes hold `total` replicas, fewer than the minimum; the
    rule names the first resource that is short."""
    pool = snap.pools[p]
    lay = snap.layouts[p]
    a = w.accelerators_per_replica
    kmin = w.min_replicas
    largest = int(snap.acc_cap[lay.start : lay.end].max()) if lay.end > lay.start else 0
    if a > largest:
        # No amount of waiting helps: the replica is larger than any node.
        nearest = f"ask for at most {largest} accelerators per replica in pool {pool.name}"
    elif total >= 1:
        nearest = _fewer(snap.sites[snap.pool_site[p]].name, w, total)
    else:
        nearest = (
            f"free room for {_replicas(kmin)} ({a} {pool.accelerator_class} accelerators"
            f" each, on one node) in pool {pool.name}"
        )
    return _PoolVerdict(
        2,
        _binding_resource(rooms.stage_totals(p, w), kmin),
        f"pool {pool.name} has room for {total} of {_replicas(kmin)} of {a} accelerators",
        nearest,
    )


def _topology_verdict(
    snap: Snapshot, w: Workload, p: int, total: int, required: str, rooms: _Rooms
) -> _PoolVerdict | None:
    """Stage 3: the pool has no such topology level, or no domain of it holds the
    minimum; None when one does."""
    pool = snap.pools[p]
    level = topology_level(pool.topology_keys, required)
    if level is None:
        return _PoolVerdict(
            3,
            "TopologyUnsatisfiable",
            f"pool {pool.name} has no topology level {required!r}",
            f"drop the required topology {required!r}",
        )
    best = rooms.best_domain(p, w, level)
    if best >= w.min_replicas:
        return None
    return _PoolVerdict(
        3,
        "TopologyUnsatisfiable",
        f"pool {pool.name} holds {total} replicas but at most {best} in one {required}",
        _fewer(snap.sites[snap.pool_site[p]].name, w, best)
        if best >= 1
        else f"drop the required topology {required!r}",
    )


def _binding_resource(totals: tuple[int, int, int], kmin: int) -> str:
    """The first resource, in the order accelerators, CPU, memory, pods, that is short."""
    acc_only, with_cpu, with_mem = totals
    if acc_only < kmin:
        return "InsufficientAccelerators"
    if with_cpu < kmin:
        return "InsufficientCPU"
    if with_mem < kmin:
        return "InsufficientMemory"
    return "InsufficientPods"


def site_verdicts(snap: Snapshot, st: CycleState, w: Workload, rooms: _Rooms) -> list[SiteVerdict]:
    queue = snap.queue_index[w.queue]
    return [
        _site_verdict(snap, st, w, queue, s, site.name, rooms) for s, site in enumerate(snap.sites)
    ]


def _names(items: Sequence[str], last: str = "and") -> str:
    """'DE', 'DE and NL', 'DE, NL and FR': for messages people read."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def _site_verdict(
    snap: Snapshot, st: CycleState, w: Workload, queue: int, s: int, name: str, rooms: _Rooms
) -> SiteVerdict:
    """The site's own rules first (where it is, what it is certified for, who may use
    it, whether it takes work), then the furthest any of its candidate pools got."""
    refused = _location_verdict(snap.sites[s], name, w)
    if refused is None:
        refused = _gate_verdict(snap, w, queue, s, name)
    if refused is not None:
        return refused
    pools = _candidate_pools(snap, w, s)
    if not pools:
        return _no_pool_verdict(snap, w, s, name)
    best = max(
        (pool_verdict(snap, st, w, queue, p, rooms) for p in pools),
        key=lambda v: v.stage,
    )
    return SiteVerdict(name, best.rule, best.message, best.nearest)


def _location_verdict(site: Site, name: str, w: Workload) -> SiteVerdict | None:
    """The workload's residency: where the site is, and what it is certified for."""
    res = w.residency
    if not res.allows_location(site):
        allowed = _names(sorted(res.jurisdictions | res.regions))
        regions = f" ({_names(site.regions)})" if site.regions else ""
        return SiteVerdict(
            name,
            "ResidencyDenied",
            f"site {name} is in {site.jurisdiction}{regions};"
            f" the workload's residency allows only {allowed}",
            f"allow jurisdiction {site.jurisdiction} in the workload's residency",
        )
    missing = res.missing_certifications(site)
    if missing:
        return SiteVerdict(
            name,
            "CertificationMissing",
            f"site {name} lacks certification {_names(sorted(missing))}",
            f"certify site {name} for {', '.join(sorted(missing))}",
        )
    return None


def _gate_verdict(snap: Snapshot, w: Workload, queue: int, s: int, name: str) -> SiteVerdict | None:
    """Whether the site takes the workload at all: its queue's entitlement, the
    site's connection and whether it is cordoned."""
    site = snap.sites[s]
    if not snap.entitled[queue][s]:
        return SiteVerdict(
            name,
            "NotEntitled",
            f"queue {w.queue} (or an ancestor) is not entitled to site {name}",
            f"entitle queue {w.queue} to site {name}",
        )
    if not site.connected:
        return SiteVerdict(
            name, "SiteDisconnected", f"site {name} is not connected", f"reconnect site {name}"
        )
    if not site.schedulable:
        return SiteVerdict(
            name, "SiteUnschedulable", f"site {name} is cordoned", f"uncordon site {name}"
        )
    return None


def _candidate_pools(snap: Snapshot, w: Workload, s: int) -> list[int]:
    """The site's pools of a class the workload accepts, in the order it prefers them:
    by its class order, then the cheaper pool, then the pool's index."""
    pools = [
        p
        for p in range(len(snap.pools))
        if snap.pool_site[p] == s and snap.pools[p].accelerator_class in w.accelerator_classes
    ]
    pools.sort(
        key=lambda p: (
            w.accelerator_classes.index(snap.pools[p].accelerator_class),
            snap.pools[p].cost_per_accelerator_hour,
            p,
        )
    )
    return pools


def _no_pool_verdict(snap: Snapshot, w: Workload, s: int, name: str) -> SiteVerdict:
    """No pool of an accepted class at the site: suggest the first class it has."""
    others = sorted(
        {snap.pools[p].accelerator_class for p, x in enumerate(snap.pool_site) if x == s}
    )
    return SiteVerdict(
        name,
        "AcceleratorClassUnavailable",
        f"site {name} has no pool of {_names(w.accelerator_classes, 'or')}",
        f"accept accelerator class {others[0]}" if others else None,
    )


class VerdictTable(Mapping[str, list[SiteVerdict]]):
    """Read-only verdicts of the workloads left pending, computed once on first read."""

    def __init__(
        self,
        snap: Snapshot,
        state: CycleState,
        pending: Sequence[Workload] | dict[str, Workload],
    ) -> None:
        """`pending`: the workloads left pending, or a dict of them by key (used as is)."""
        self._snap = snap
        self._state = state
        self._pending = pending if isinstance(pending, dict) else {w.key: w for w in pending}
        self._memo: dict[str, list[SiteVerdict]] = {}
        self._rooms = _Rooms(snap, state)

    def __getitem__(self, key: str) -> list[SiteVerdict]:
        hit = self._memo.get(key)
        if hit is None:
            w = self._pending[key]
            hit = self._memo[key] = site_verdicts(self._snap, self._state, w, self._rooms)
        return list(hit)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending
