"""Per-site verdicts for workloads left pending: the rule that stopped them and the
nearest change that would let them run.

Verdicts are a pure function of the cycle's final state, so they are computed
on first access: the operator reads a few thousand per cycle, the benchmark
none, and 100,000 pending workloads times sites never cost a cycle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from gpufleet.core.fairshare import INF
from gpufleet.core.model import SiteVerdict, Workload
from gpufleet.core.placement import domain_sums, topology_level
from gpufleet.core.snapshot import Snapshot
from gpufleet.core.state import CycleState

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


def pool_verdict(snap: Snapshot, st: CycleState, w: Workload, queue: int, p: int) -> _PoolVerdict:
    pool = snap.pools[p]
    site = snap.sites[snap.pool_site[p]].name
    cls = snap.pool_class[p]
    a = w.accelerators_per_replica
    kmin = w.min_replicas
    need = kmin * a
    quota = st.quota_room(queue, cls, a)
    if quota < kmin:
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
    power = st.power_room(p, a)
    if power < kmin:
        s = snap.pool_site[p]
        left_w = snap.power_budget[s] - st.power[s]
        need_w = need * pool.watts_per_accelerator
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
    lay = snap.layouts[p]
    f = st.fit(lay.start, lay.end, w)
    total = int(f.sum())
    if total < kmin:
        rule = _binding_resource(st, lay.start, lay.end, w)
        largest = int(snap.acc_cap[lay.start : lay.end].max()) if lay.end > lay.start else 0
        if a > largest:
            # No amount of waiting helps: the replica is larger than any node.
            nearest = f"ask for at most {largest} accelerators per replica in pool {pool.name}"
        elif total >= 1:
            nearest = _fewer(site, w, total)
        else:
            nearest = (
                f"free room for {_replicas(kmin)} ({a} {pool.accelerator_class} accelerators"
                f" each, on one node) in pool {pool.name}"
            )
        return _PoolVerdict(
            2,
            rule,
            f"pool {pool.name} has room for {total} of {_replicas(kmin)} of {a} accelerators",
            nearest,
        )
    if w.required_topology is not None:
        level = topology_level(pool.topology_keys, w.required_topology)
        if level is None:
            return _PoolVerdict(
                3,
                "TopologyUnsatisfiable",
                f"pool {pool.name} has no topology level {w.required_topology!r}",
                f"drop the required topology {w.required_topology!r}",
            )
        best = int(domain_sums(f, lay.domain_starts[level]).max())
        if best < kmin:
            return _PoolVerdict(
                3,
                "TopologyUnsatisfiable",
                f"pool {pool.name} holds {total} replicas but at most {best} in one"
                f" {w.required_topology}",
                _fewer(site, w, best)
                if best >= 1
                else f"drop the required topology {w.required_topology!r}",
            )
    return _PoolVerdict(
        4,
        "Fits",
        f"room for the workload appeared in pool {pool.name} after its turn",
        "none needed: it is considered again next cycle",
    )


def _binding_resource(st: CycleState, start: int, end: int, w: Workload) -> str:
    """The first resource, in the order accelerators, CPU, memory, pods, that is short."""
    ready = st.ready_i[start:end]
    kmin = w.min_replicas
    f = (st.acc[start:end] // w.accelerators_per_replica).clip(0) * ready
    if int(f.sum()) < kmin:
        return "InsufficientAccelerators"
    if w.cpu_millis_per_replica:
        f = f.clip(max=(st.cpu[start:end] // w.cpu_millis_per_replica).clip(0))
        if int(f.sum()) < kmin:
            return "InsufficientCPU"
    if w.memory_bytes_per_replica:
        f = f.clip(max=(st.mem[start:end] // w.memory_bytes_per_replica).clip(0))
        if int(f.sum()) < kmin:
            return "InsufficientMemory"
    return "InsufficientPods"


def site_verdicts(snap: Snapshot, st: CycleState, w: Workload) -> list[SiteVerdict]:
    queue = snap.queue_index[w.queue]
    out = []
    for s, site in enumerate(snap.sites):
        out.append(_site_verdict(snap, st, w, queue, s, site.name))
    return out


def _names(items: Sequence[str], last: str = "and") -> str:
    """'DE', 'DE and NL', 'DE, NL and FR': for messages people read."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def _site_verdict(
    snap: Snapshot, st: CycleState, w: Workload, queue: int, s: int, name: str
) -> SiteVerdict:
    site = snap.sites[s]
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
    pools = [
        p
        for p in range(len(snap.pools))
        if snap.pool_site[p] == s and snap.pools[p].accelerator_class in w.accelerator_classes
    ]
    if not pools:
        others = sorted(
            {snap.pools[p].accelerator_class for p, x in enumerate(snap.pool_site) if x == s}
        )
        return SiteVerdict(
            name,
            "AcceleratorClassUnavailable",
            f"site {name} has no pool of {_names(w.accelerator_classes, 'or')}",
            f"accept accelerator class {others[0]}" if others else None,
        )
    pools.sort(
        key=lambda p: (
            w.accelerator_classes.index(snap.pools[p].accelerator_class),
            snap.pools[p].cost_per_accelerator_hour,
            p,
        )
    )
    best = max(
        (pool_verdict(snap, st, w, queue, p) for p in pools),
        key=lambda v: v.stage,
    )
    return SiteVerdict(name, best.rule, best.message, best.nearest)


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

    def __getitem__(self, key: str) -> list[SiteVerdict]:
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = site_verdicts(self._snap, self._state, self._pending[key])
        return list(hit)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending
