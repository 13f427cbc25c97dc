"""The fleet at a glance after a cycle: what the statuses of Sites, GpuPools and Queues
say and what the metrics export. Pure; computed once per cycle and read by both."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from gpufleet import core
from gpufleet.api.v1alpha1 import Queue
from gpufleet.api.v1alpha1.queue import Fairness
from gpufleet.control.statuses import rfc3339, set_condition
from gpufleet.core.fairness import accumulate
from gpufleet.metrics import (
    PoolState,
    QueueShare,
    SiteConnection,
    SiteState,
    WorkloadGroup,
    WorkloadPhase,
)
from gpufleet.observed.cache import HUB, CacheView
from gpufleet.observed.translate import Inputs, timestamp


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
    out = FleetSummary()
    pools = {p.name: p for p in inputs.pools}
    nodes_by_pool: dict[str, list[core.Node]] = defaultdict(list)
    for n in inputs.nodes:
        nodes_by_pool[n.pool].append(n)
    allocated_pool: dict[str, int] = defaultdict(int)
    allocated_queue: dict[tuple[str, str], int] = defaultdict(int)
    pending_queue: dict[tuple[str, str], int] = defaultdict(int)
    used_on_node: dict[str, int] = defaultdict(int)
    for w in inputs.workloads:
        if w.placement is not None and w.placement.pool in pools:
            total = len(w.placement.nodes) * w.accelerators_per_replica
            allocated_pool[w.placement.pool] += total
            allocated_queue[(w.queue, pools[w.placement.pool].accelerator_class)] += total
            for node in w.placement.nodes:
                used_on_node[node] += w.accelerators_per_replica
        elif w.placement is None:
            pending_queue[(w.queue, w.accelerator_classes[0])] += (
                w.replicas * w.accelerators_per_replica
            )

    class_capacity: dict[str, dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0])
    )
    for name, pool in sorted(pools.items()):
        members = nodes_by_pool.get(name, [])
        ready = [n for n in members if n.ready]
        # Node capacity in the core input is already net of foreign pods; add back ours.
        capacity = sum(n.accelerators for n in members)
        allocated = allocated_pool.get(name, 0)
        free = max(sum(n.accelerators - used_on_node.get(n.name, 0) for n in ready), 0)
        sizes = [
            w.accelerators_per_replica
            for w in inputs.workloads
            if w.placement and w.placement.pool == name
        ]
        common = max(set(sizes), key=sizes.count) if sizes else 1
        stranded = sum(
            left
            for n in ready
            if 0 < (left := n.accelerators - used_on_node.get(n.name, 0)) < common
        )
        out.pool_states.append(
            PoolState(
                name=name,
                site=pool.site,
                accelerator_class=pool.accelerator_class,
                capacity=capacity,
                allocated=min(allocated, capacity) if capacity else allocated,
                free=free,
            )
        )
        pool_model = inputs.pool_models[name]
        gen = pool_model.metadata.generation
        old = (
            dict(pool_model.status.model_dump(by_alias=True, exclude_none=True, mode="json"))
            if pool_model.status
            else {}
        )
        message = f"{len(ready)}/{len(members)} nodes ready, {free} of {capacity} accelerators free"
        out.pool_status[name] = {
            "observedGeneration": gen,
            "nodesReady": len(ready),
            "nodesTotal": len(members),
            "capacity": capacity,
            "allocated": allocated,
            "free": free,
            "fragmentation": round(stranded / free, 4) if free else 0.0,
            "conditions": set_condition(
                old.get("conditions"),
                "Ready",
                "True" if ready else "False",
                "NodesReady" if ready else "NoReadyNodes",
                message,
                gen,
                now,
            ),
        }
        cap = class_capacity[pool.site][pool.accelerator_class]
        cap[0] += capacity
        cap[1] += allocated

    for site in inputs.sites:
        site_model = inputs.site_models[site.name]
        cluster = inputs.site_cluster[site.name]
        state = view.clusters.get(cluster)
        watts = sum(
            allocated_pool.get(p.name, 0) * p.watts_per_accelerator
            for p in inputs.pools
            if p.site == site.name
        )
        connection = (
            SiteConnection.CONNECTED
            if site.connected
            else (
                SiteConnection.UNKNOWN
                if state is None
                # Past fence + grace: its pods are stopped there and its work may move.
                else SiteConnection.FENCED
                if cluster != HUB and now - state.lease_renewed_at > site_loss_after
                else SiteConnection.DISCONNECTED
            )
        )
        out.site_states.append(
            SiteState(
                name=site.name,
                connection=connection,
                power_in_use_watts=watts,
                power_budget_watts=site.power_budget_watts,
            )
        )
        gen = site_model.metadata.generation
        old = (
            dict(site_model.status.model_dump(by_alias=True, exclude_none=True, mode="json"))
            if site_model.status
            else {}
        )
        reason = state.reason if state else "NotConnected"
        message = state.message if state else "no connection has been attempted yet"
        conds = set_condition(
            old.get("conditions"),
            "Connected",
            "True" if site.connected else "False",
            reason,
            message,
            gen,
            now,
        )
        site_ready = site.connected and site.schedulable
        conds = set_condition(
            conds,
            "Ready",
            "True" if site_ready else "False",
            "Ready" if site_ready else ("Cordoned" if not site.schedulable else reason),
            "accepting workloads" if site_ready else message,
            gen,
            now,
        )
        connection_status: dict[str, Any] = {
            # The API knows Connected, Disconnected and Unknown; fenced is a disconnection.
            "state": "Disconnected" if connection == SiteConnection.FENCED else connection.value,
            "reason": reason,
            "message": message[:1000],
        }
        if state is not None and site.connected:
            connection_status["lastHeartbeat"] = rfc3339(now)
        elif old.get("connection", {}).get("lastHeartbeat"):
            connection_status["lastHeartbeat"] = old["connection"]["lastHeartbeat"]
        out.site_status[site.name] = {
            "observedGeneration": gen,
            "connection": connection_status,
            "capacity": [
                {"acceleratorClass": cls, "capacity": c, "allocated": a}
                for cls, (c, a) in sorted(class_capacity.get(site.name, {}).items())
            ],
            "powerInUseKw": round(watts / 1000.0, 3),
            "conditions": conds,
        }

    fair = result.fair_shares if result is not None else {}
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for wl in inputs.workload_models.values():
        phase: str = wl.status.phase if wl.status and wl.status.phase else "Pending"
        since = timestamp(
            wl.metadata.model_extra.get("creationTimestamp") if wl.metadata.model_extra else None
        )
        groups[(wl.spec.queue, phase)].append(since)
    for (queue, phase), times in sorted(groups.items()):
        if queue in inputs.queue_models:
            out.workload_groups.append(
                WorkloadGroup(
                    queue=queue,
                    phase=WorkloadPhase(phase),
                    count=len(times),
                    oldest_since=min(times) if phase == "Pending" and min(times) > 0 else None,
                )
            )
    counts: dict[tuple[str, str], int] = {(q, p): len(t) for (q, p), t in groups.items()}
    # A parent queue holds what its descendants hold and waits for what they wait for.
    parent = {q.name: q.parent for q in inputs.queues}
    for table in (allocated_queue, pending_queue, counts):
        for (leaf, key), value in list(table.items()):
            seen = {leaf}
            ancestor = parent.get(leaf)
            while ancestor is not None and ancestor not in seen:
                seen.add(ancestor)
                table[(ancestor, key)] = table.get((ancestor, key), 0) + value
                ancestor = parent.get(ancestor)
    for q in inputs.queues:
        classes = sorted(
            set(q.deserved)
            | set(fair.get(q.name, {}))
            | {c for (qq, c) in allocated_queue if qq == q.name}
        )
        rows: list[dict[str, Any]] = []
        for cls in classes:
            share = float(fair.get(q.name, {}).get(cls, 0.0))
            alloc = allocated_queue.get((q.name, cls), 0)
            pend = pending_queue.get((q.name, cls), 0)
            out.queue_shares.append(
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
        queue_model = inputs.queue_models[q.name]
        gen = queue_model.metadata.generation
        old = (
            dict(queue_model.status.model_dump(by_alias=True, exclude_none=True, mode="json"))
            if queue_model.status
            else {}
        )
        history = _usage(queue_model, rows, now)
        admitted = counts.get((q.name, "Admitted"), 0) + counts.get((q.name, "Running"), 0)
        waiting = counts.get((q.name, "Pending"), 0) + counts.get((q.name, "Preempted"), 0)
        total_alloc = sum(r["allocated"] for r in rows)
        total_deserved = sum(q.deserved.values())
        below = total_alloc < total_deserved and waiting > 0
        invalid = inputs.invalid.get(("Queue", q.name))
        conds = set_condition(
            old.get("conditions"),
            "Valid",
            "False" if invalid else "True",
            "InvalidSpec" if invalid else "Valid",
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
        out.queue_status[q.name] = {
            "observedGeneration": gen,
            "resources": rows,
            "totals": {
                "deserved": total_deserved,
                "allocated": total_alloc,
                "fairShare": round(sum(r["fairShare"] for r in rows), 3),
                "pending": sum(v for (qq, _), v in pending_queue.items() if qq == q.name),
            },
            "admittedWorkloads": admitted,
            "pendingWorkloads": waiting,
            "conditions": conds,
            **history,
        }
        starved = result is not None and q.name in result.starved
        old_since = old.get("starvedSince")
        out.queue_status[q.name]["starvedSince"] = (old_since or rfc3339(now)) if starved else None
    return out


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
