"""The fleet at a glance after a cycle: what the statuses of Sites, GpuPools and Queues
say and what the metrics export. Pure; computed once per cycle and read by both."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel

from gpufleet import core
from gpufleet.api.v1alpha1 import Queue, Site
from gpufleet.api.v1alpha1.queue import Fairness
from gpufleet.control.statuses import rfc3339, set_condition
from gpufleet.control.validity import apply_validity, site_fenced, site_untried
from gpufleet.core.fairness import accumulate
from gpufleet.metrics import (
    PoolState,
    QueueShare,
    SiteConnection,
    SiteState,
    WorkloadGroup,
    WorkloadPhase,
)
from gpufleet.observed.cache import HUB, CacheView, ClusterState
from gpufleet.observed.translate import Inputs, timestamp

# (queue, accelerator class) -> accelerators, or (queue, phase) -> workloads.
QueueTable = dict[tuple[str, str], int]


@dataclass
class FleetSummary:
    site_states: list[SiteState] = field(default_factory=list)
    pool_states: list[PoolState] = field(default_factory=list)
    queue_shares: list[QueueShare] = field(default_factory=list)
    workload_groups: list[WorkloadGroup] = field(default_factory=list)
    site_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    pool_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    queue_status: dict[str, dict[str, Any]] = field(default_factory=dict)


def summarise(
    view: CacheView,
    inputs: Inputs,
    result: core.CycleResult | None,
    now: float,
    site_loss_after: float = 90.0,
) -> FleetSummary:
    """1. what placements hold (per pool, queue and node) and what pending work waits for;
    2. each pool: its metrics and status, and per site and class what the pools hold;
    3. each site: its connection, power in use, metrics and status;
    4. workloads counted per queue and phase, and those metrics;
    5. each queue, counting what its descendants hold and wait for: metrics and status;
    6. Valid conditions: objects set aside, nodes claimed twice (`control/validity.py`).
    `site_loss_after` is not read: a site is fenced on evidence only (`validity.site_fenced`).
    """
    out = FleetSummary()
    held = _held(inputs)  # 1
    for name, pool in sorted(held.pools.items()):  # 2
        state, status = _pool_summary(name, pool, held, inputs, now)
        out.pool_states.append(state)
        out.pool_status[name] = status
    site_capacity = _site_capacity(held.pools, out.pool_status)
    for site in inputs.sites:  # 3
        if site_untried(view.clusters.get(inputs.site_cluster[site.name])):
            continue
        site_state, site_status = _site_summary(
            site, view, inputs, held, site_capacity.get(site.name, []), now
        )
        out.site_states.append(site_state)
        out.site_status[site.name] = site_status
    groups = _workload_groups(inputs)  # 4
    out.workload_groups = _group_metrics(groups, inputs)
    # A parent queue holds what its descendants hold and waits for what they wait for.
    parent = {q.name: q.parent for q in inputs.queues}  # 5
    queues = _QueueTotals(
        fair=result.fair_shares if result is not None else {},
        allocated=_rolled_up(held.allocated_queue, parent),
        pending=_rolled_up(held.pending_queue, parent),
        counts=_rolled_up({(q, p): len(t) for (q, p), t in groups.items()}, parent),
        starved=result.starved if result is not None else frozenset(),
    )
    for q in inputs.queues:
        shares, queue_status = _queue_summary(q, queues, inputs, now)
        out.queue_shares.extend(shares)
        out.queue_status[q.name] = queue_status
    apply_validity(  # 6: what cannot be used says why
        {"Site": view.sites, "GpuPool": view.pools, "Queue": view.queues},
        inputs,
        {"Site": out.site_status, "GpuPool": out.pool_status, "Queue": out.queue_status},
        now,
    )
    return out


def _old_status(status: BaseModel | None) -> dict[str, Any]:
    """An object's status as last written, as the API holds it ({} for none yet)."""
    if status is None:
        return {}
    return dict(status.model_dump(by_alias=True, exclude_none=True, mode="json"))


# -- 1. what placements hold --------------------------------------------------------------


@dataclass
class _Held:
    """Accelerators that placements on known pools hold, and that pending work waits for."""

    pools: dict[str, core.Pool]
    nodes_by_pool: dict[str, list[core.Node]]
    allocated_pool: dict[str, int]
    allocated_queue: QueueTable  # (queue, the pool's class)
    pending_queue: QueueTable  # (queue, the first class the workload accepts)
    used_on_node: dict[str, int]
    # Accelerators per replica of each placement in a pool, in workload order.
    sizes: dict[str, list[int]]


def _held(inputs: Inputs) -> _Held:
    pools = {p.name: p for p in inputs.pools}
    held = _Held(
        pools,
        nodes_by_pool=defaultdict(list),
        allocated_pool=defaultdict(int),
        allocated_queue=defaultdict(int),
        pending_queue=defaultdict(int),
        used_on_node=defaultdict(int),
        sizes=defaultdict(list),
    )
    for n in inputs.nodes:
        held.nodes_by_pool[n.pool].append(n)
    for w in inputs.workloads:
        a = w.accelerators_per_replica
        if w.placement is not None and w.placement.pool in pools:
            pool = w.placement.pool
            total = len(w.placement.nodes) * a
            held.allocated_pool[pool] += total
            held.allocated_queue[(w.queue, pools[pool].accelerator_class)] += total
            for node in w.placement.nodes:
                held.used_on_node[node] += a
            held.sizes[pool].append(a)
        elif w.placement is None:
            held.pending_queue[(w.queue, w.accelerator_classes[0])] += w.replicas * a
    return held


# -- 2. pools -------------------------------------------------------------------------


def _pool_summary(
    name: str, pool: core.Pool, held: _Held, inputs: Inputs, now: float
) -> tuple[PoolState, dict[str, Any]]:
    """A pool's metrics and status. Node capacity in the core input is already net of
    foreign pods; what our placements use is added back."""
    members = held.nodes_by_pool.get(name, [])
    ready = [n for n in members if n.ready]
    left = [n.accelerators - held.used_on_node.get(n.name, 0) for n in ready]
    capacity = sum(n.accelerators for n in members)
    allocated = held.allocated_pool.get(name, 0)
    free = max(sum(left), 0)
    state = PoolState(
        name=name,
        site=pool.site,
        accelerator_class=pool.accelerator_class,
        capacity=capacity,
        allocated=min(allocated, capacity) if capacity else allocated,
        free=free,
    )
    model = inputs.pool_models[name]
    gen = model.metadata.generation
    message = f"{len(ready)}/{len(members)} nodes ready, {free} of {capacity} accelerators free"
    status: dict[str, Any] = {
        "observedGeneration": gen,
        "nodesReady": len(ready),
        "nodesTotal": len(members),
        "capacity": capacity,
        "allocated": allocated,
        "free": free,
        "fragmentation": _fragmentation(left, held.sizes.get(name, []), free),
        "conditions": set_condition(
            _old_status(model.status).get("conditions"),
            "Ready",
            "True" if ready else "False",
            "NodesReady" if ready else "NoReadyNodes",
            message,
            gen,
            now,
        ),
    }
    return state, status


def _fragmentation(left: list[int], sizes: list[int], free: int) -> float:
    """The share of free accelerators stranded on ready nodes with less room than the
    pool's most common replica size (1 when nothing runs there)."""
    common = max(set(sizes), key=sizes.count) if sizes else 1
    stranded = sum(x for x in left if 0 < x < common)
    return round(stranded / free, 4) if free else 0.0


def _site_capacity(
    pools: Mapping[str, core.Pool], pool_status: Mapping[str, dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Per site, what its pools of each class hold and have allocated, by class."""
    totals: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for name, pool in pools.items():
        cap = totals[pool.site][pool.accelerator_class]
        cap[0] += pool_status[name]["capacity"]
        cap[1] += pool_status[name]["allocated"]
    return {
        site: [
            {"acceleratorClass": cls, "capacity": c, "allocated": a}
            for cls, (c, a) in sorted(by_class.items())
        ]
        for site, by_class in totals.items()
    }


# -- 3. sites -------------------------------------------------------------------------


def _site_summary(
    site: core.Site,
    view: CacheView,
    inputs: Inputs,
    held: _Held,
    capacity: list[dict[str, Any]],
    now: float,
) -> tuple[SiteState, dict[str, Any]]:
    """A site's metrics and status; `capacity`: what its pools hold, per class."""
    cluster = inputs.site_cluster[site.name]
    state = view.clusters.get(cluster)
    watts = sum(
        held.allocated_pool.get(p.name, 0) * p.watts_per_accelerator
        for p in inputs.pools
        if p.site == site.name
    )
    model = inputs.site_models[site.name]
    connection = _connection(site, model, cluster, state)
    metrics = SiteState(
        name=site.name,
        connection=connection,
        power_in_use_watts=watts,
        power_budget_watts=site.power_budget_watts,
    )
    gen = model.metadata.generation
    old = _old_status(model.status)
    reason = state.reason if state else "NotConnected"
    message = state.message if state else "no connection has been attempted yet"
    status: dict[str, Any] = {
        "observedGeneration": gen,
        "connection": _connection_status(site, state, connection, reason, message, old, now),
        "capacity": capacity,
        "powerInUseKw": round(watts / 1000.0, 3),
        "conditions": _site_conditions(site, old, reason, message, gen, now),
    }
    return metrics, status


def _connection(
    site: core.Site, model: Site, cluster: str, state: ClusterState | None
) -> SiteConnection:
    if site.connected:
        return SiteConnection.CONNECTED
    if state is None:
        return SiteConnection.UNKNOWN
    # Fenced only on evidence that its pods are stopped, never on silence alone.
    if cluster != HUB and site_fenced(model, state):
        return SiteConnection.FENCED
    return SiteConnection.DISCONNECTED


def _connection_status(
    site: core.Site,
    state: ClusterState | None,
    connection: SiteConnection,
    reason: str,
    message: str,
    old: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """The status's connection: the heartbeat is now while connected, else the last one."""
    status: dict[str, Any] = {
        # The API knows Connected, Disconnected and Unknown; fenced is a disconnection.
        "state": "Disconnected" if connection == SiteConnection.FENCED else connection.value,
        "reason": reason,
        "message": message[:1000],
    }
    if state is not None and site.connected:
        status["lastHeartbeat"] = rfc3339(now)
    elif old.get("connection", {}).get("lastHeartbeat"):
        status["lastHeartbeat"] = old["connection"]["lastHeartbeat"]
    return status


def _site_conditions(
    site: core.Site,
    old: dict[str, Any],
    reason: str,
    message: str,
    gen: int | None,
    now: float,
) -> list[dict[str, Any]]:
    """Connected, and Ready: connected and not cordoned."""
    conds = set_condition(
        old.get("conditions"),
        "Connected",
        "True" if site.connected else "False",
        reason,
        message,
        gen,
        now,
    )
    ready = site.connected and site.schedulable
    return set_condition(
        conds,
        "Ready",
        "True" if ready else "False",
        "Ready" if ready else ("Cordoned" if not site.schedulable else reason),
        "accepting workloads" if ready else message,
        gen,
        now,
    )


# -- 4. workloads per queue and phase ----------------------------------------------------


def _workload_groups(inputs: Inputs) -> dict[tuple[str, str], list[float]]:
    """(queue, phase) -> when each of its workloads was created (0 when unknown); once
    per translation (`Inputs.from_workloads`)."""
    known = inputs.from_workloads.get("groups")
    if known is not None:
        return cast(dict[tuple[str, str], list[float]], known)
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for wl in inputs.workload_models.values():
        phase: str = wl.status.phase if wl.status and wl.status.phase else "Pending"
        since = timestamp(
            wl.metadata.model_extra.get("creationTimestamp") if wl.metadata.model_extra else None
        )
        groups[(wl.spec.queue, phase)].append(since)
    inputs.from_workloads["groups"] = groups
    return groups


def _group_metrics(
    groups: Mapping[tuple[str, str], list[float]], inputs: Inputs
) -> list[WorkloadGroup]:
    """The groups of known queues, in order; a pending group says since when it waits."""
    return [
        WorkloadGroup(
            queue=queue,
            phase=WorkloadPhase(phase),
            count=len(times),
            oldest_since=min(times) if phase == "Pending" and min(times) > 0 else None,
        )
        for (queue, phase), times in sorted(groups.items())
        if queue in inputs.queue_models
    ]


# -- 5. queues ------------------------------------------------------------------------


def _rolled_up(table: QueueTable, parent: Mapping[str, str | None]) -> QueueTable:
    """The table with each entry also counted at every ancestor of its queue."""
    out = dict(table)
    for (leaf, key), value in table.items():
        seen = {leaf}
        ancestor = parent.get(leaf)
        while ancestor is not None and ancestor not in seen:
            seen.add(ancestor)
            out[(ancestor, key)] = out.get((ancestor, key), 0) + value
            ancestor = parent.get(ancestor)
    return out


@dataclass(frozen=True)
class _QueueTotals:
    """Per queue, descendants included: fair shares from the cycle, accelerators
    allocated and waited for per class, workloads per phase."""

    fair: Mapping[str, Mapping[str, float]]
    allocated: QueueTable
    pending: QueueTable
    counts: QueueTable
    starved: frozenset[str]  # leaf queues the cycle found starved (`CycleResult.starved`)


def _queue_summary(
    q: core.Queue, totals: _QueueTotals, inputs: Inputs, now: float
) -> tuple[list[QueueShare], dict[str, Any]]:
    """A queue's metrics, one per class it deserves, got a fair share of or holds; and
    its status."""
    fair = totals.fair.get(q.name, {})
    classes = sorted(
        set(q.deserved) | set(fair) | {c for (qq, c) in totals.allocated if qq == q.name}
    )
    shares: list[QueueShare] = []
    rows: list[dict[str, Any]] = []
    for cls in classes:
        share = float(fair.get(cls, 0.0))
        alloc = totals.allocated.get((q.name, cls), 0)
        pend = totals.pending.get((q.name, cls), 0)
        shares.append(
            QueueShare(
                queue=q.name,
                accelerator_class=cls,
                deserved=float(q.deserved.get(cls, 0)),
                fair_share=share,
                allocated=float(alloc),
                pending=float(pend),
            )
        )
        rows.append({"acceleratorClass": cls, "allocated": alloc, "fairShare": round(share, 3)})
    return shares, _queue_status(q, rows, totals, inputs, now)


def _queue_status(
    q: core.Queue, rows: list[dict[str, Any]], totals: _QueueTotals, inputs: Inputs, now: float
) -> dict[str, Any]:
    """`rows`: per class, what the queue holds and its fair share."""
    model = inputs.queue_models[q.name]
    gen = model.metadata.generation
    admitted = totals.counts.get((q.name, "Admitted"), 0) + totals.counts.get(
        (q.name, "Running"), 0
    )
    waiting = totals.counts.get((q.name, "Pending"), 0) + totals.counts.get(
        (q.name, "Preempted"), 0
    )
    total_alloc = sum(r["allocated"] for r in rows)
    total_deserved = sum(q.deserved.values())
    below = total_alloc < total_deserved and waiting > 0
    invalid = inputs.invalid.get(("Queue", q.name))
    old = _old_status(model.status)
    # Fairness over time: decayed usage (into `rows`) and the reclaim clock, kept in
    # status so that a restarted operator carries on (translate reads them back).
    history = _usage(model, rows, now)
    starved_since = (old.get("starvedSince") or rfc3339(now)) if q.name in totals.starved else None
    conds = set_condition(
        old.get("conditions"),
        "Valid",
        "False" if invalid else "True",
        inputs.rule("Queue", q.name) if invalid else "Valid",
        invalid or "spec accepted",
        gen,
        now,
    )
    conds = set_condition(
        conds,
        "BelowDeserved",
        "True" if below else "False",
        "Starved" if below else "Satisfied",
        f"{total_alloc} of {total_deserved} deserved accelerators allocated, {waiting} waiting",
        gen,
        now,
    )
    return {
        "observedGeneration": gen,
        "resources": rows,
        "totals": {
            "deserved": total_deserved,
            "allocated": total_alloc,
            "fairShare": round(sum(r["fairShare"] for r in rows), 3),
            "pending": sum(v for (qq, _), v in totals.pending.items() if qq == q.name),
        },
        "admittedWorkloads": admitted,
        "pendingWorkloads": waiting,
        "conditions": conds,
        **history,
        "starvedSince": starved_since,
    }


def _usage(queue: Queue, rows: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Bring each class's decayed usage and fair usage up to `now` (into `rows`), as if
    the allocation and fair share of this cycle had held since the last update."""
    status = queue.status
    before = {r.accelerator_class: r for r in (status.resources or [])} if status else {}
    then = timestamp(status.usage_updated_at) if status and status.usage_updated_at else now
    fair = queue.spec.fairness or Fairness()
    half_life = float(fair.usage_half_life_seconds)
    elapsed = max(now - then, 0.0)
    for row in rows:
        old = before.get(row["acceleratorClass"])
        row["usage"] = round(
            accumulate(old.usage if old else 0.0, row["allocated"], elapsed, half_life), 3
        )
        row["fairUsage"] = round(
            accumulate(old.fair_usage if old else 0.0, row["fairShare"], elapsed, half_life), 3
        )
    return {"usageUpdatedAt": rfc3339(now)}
