"""The invariants of docs/architecture.md, checked by replaying a cycle's decisions.

The replay walks `queue_order`; before each admitted workload it applies the
evictions made for it, then the admission. That is the order the cycle made
them in, so each rule can be checked at the moment it applied.
"""

from __future__ import annotations

from collections import defaultdict

from gpufleet.core import CycleResult, Snapshot, Workload
from gpufleet.core.fairness import recent_evictions, started_by_wait_bound, waited_bound


class InvariantError(AssertionError):
    pass


def check_invariants(snap: Snapshot, result: CycleResult) -> None:
    nodes = {n.name: n for n in snap.nodes}
    pools = {p.name: p for p in snap.pools}
    sites = {s.name: s for s in snap.sites}
    queues = {q.name: q for q in snap.queues}
    by_key: dict[str, Workload] = {w.key: w for w in (*snap.running, *snap.pending)}
    pending = {w.key for w in snap.pending}

    def chain(name: str) -> list[str]:
        out = []
        q: str | None = name
        while q is not None:
            out.append(q)
            q = queues[q].parent
        return out

    acc: dict[str, int] = defaultdict(int)
    cpu: dict[str, int] = defaultdict(int)
    mem: dict[str, int] = defaultdict(int)
    pods: dict[str, int] = defaultdict(int)
    alloc: dict[tuple[str, str], int] = defaultdict(int)

    def use(w: Workload, pool: str, node_names: tuple[str, ...], sign: int) -> None:
        for n in node_names:
            if n not in nodes:
                continue
            acc[n] += sign * w.accelerators_per_replica
            cpu[n] += sign * w.cpu_millis_per_replica
            mem[n] += sign * w.memory_bytes_per_replica
            pods[n] += sign
        cls = pools[pool].accelerator_class
        for q in chain(w.queue):
            alloc[q, cls] += sign * w.accelerators_per_replica * len(node_names)

    for w in snap.running:
        assert w.placement is not None
        use(w, w.placement.pool, w.placement.nodes, +1)

    admissions = {a.workload: a for a in result.admissions}
    if len(admissions) != len(result.admissions):
        raise InvariantError("a workload was admitted twice (more than one site)")
    evicted_for: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen_victims: set[str] = set()
    for e in result.evictions:
        if e.workload in seen_victims:
            raise InvariantError(f"{e.workload} evicted twice")
        seen_victims.add(e.workload)
        victim = by_key.get(e.workload)
        if victim is None or victim.placement is None:
            raise InvariantError(f"evicted {e.workload} is not running")
        if not victim.preemptible:
            raise InvariantError(f"evicted {e.workload} is not preemptible")
        cap = queues[victim.queue].max_evictions
        window = queues[victim.queue].eviction_window_seconds
        if cap is not None and recent_evictions(victim.eviction_times, snap.now, window) >= cap:
            raise InvariantError(f"{e.workload} evicted more than its cap of {cap} per {window} s")
        if e.preemptor not in admissions:
            raise InvariantError(f"{e.workload} evicted for {e.preemptor}, which was not admitted")
        evicted_for[e.preemptor].append((e.workload, e.reason))

    for key in result.queue_order:
        if key not in admissions:
            continue
        a = admissions[key]
        w = by_key[key]
        if key not in pending:
            raise InvariantError(f"admitted {key} was not pending")
        for victim_key, reason in evicted_for.get(key, []):
            v = by_key[victim_key]
            assert v.placement is not None
            cls = pools[v.placement.pool].accelerator_class
            if reason == "Reclaimed":
                deserved = queues[v.queue].deserved.get(cls, 0)
                if alloc[v.queue, cls] <= deserved:
                    raise InvariantError(
                        f"{victim_key} reclaimed from queue {v.queue} at or below deserved"
                        f" ({alloc[v.queue, cls]} <= {deserved} {cls})"
                    )
                if v.queue == w.queue:
                    raise InvariantError(f"{victim_key} reclaimed by its own queue")
                if started_by_wait_bound(
                    v.created_at,
                    v.eviction_times,
                    v.placement.started_at,
                    queues[v.queue].max_wait_seconds,
                ) and not waited_bound(
                    w.created_at, w.eviction_times, snap.now, queues[w.queue].max_wait_seconds
                ):
                    raise InvariantError(
                        f"{victim_key} reclaimed, though its wait bound started it, for"
                        f" {key}, which has not waited its own"
                    )
            elif reason == "Preempted":
                if v.queue != w.queue or v.priority >= w.priority:
                    raise InvariantError(f"{victim_key} preempted by {key} without priority")
            else:
                raise InvariantError(f"unknown eviction reason {reason!r}")
            use(v, v.placement.pool, v.placement.nodes, -1)
        # Gang whole or nothing, one site, one pool.
        if not (w.min_replicas <= len(a.nodes) <= w.replicas):
            raise InvariantError(
                f"{key} placed with {len(a.nodes)} replicas outside {w.min_replicas}..{w.replicas}"
            )
        pool = pools[a.pool]
        if pool.site != a.site:
            raise InvariantError(f"{key} pool {a.pool} is not at site {a.site}")
        if any(nodes[n].pool != a.pool for n in a.nodes):
            raise InvariantError(f"{key} has nodes outside pool {a.pool}")
        if pool.accelerator_class not in w.accelerator_classes:
            raise InvariantError(f"{key} placed on class {pool.accelerator_class}")
        site = sites[a.site]
        if not w.residency.allows_location(site) or w.residency.missing_certifications(site):
            raise InvariantError(f"{key} placed at {a.site}, outside its residency")
        if not (site.schedulable and site.connected):
            raise InvariantError(f"{key} placed at unschedulable or disconnected {a.site}")
        for q in chain(w.queue):
            queue = queues[q]
            if queue.allowed_sites is not None and site.name not in queue.allowed_sites:
                raise InvariantError(f"{key} placed at {a.site}, queue {q} not entitled")
            if (
                queue.allowed_jurisdictions is not None
                and site.jurisdiction not in queue.allowed_jurisdictions
            ):
                raise InvariantError(f"{key} placed in {site.jurisdiction}, queue {q} not entitled")
        if any(not nodes[n].ready for n in a.nodes):
            raise InvariantError(f"{key} placed on a node that is not ready")
        if w.required_topology is not None:
            level = pool.topology_keys.index(w.required_topology)
            domains = {nodes[n].topology[: level + 1] for n in a.nodes}
            if len(domains) != 1:
                raise InvariantError(f"{key} spans {len(domains)} {w.required_topology} domains")
        use(w, a.pool, a.nodes, +1)
        for n in set(a.nodes):
            node = nodes[n]
            if (
                acc[n] > node.accelerators
                or cpu[n] > node.cpu_millis
                or mem[n] > node.memory_bytes
                or pods[n] > node.pods
            ):
                raise InvariantError(f"node {n} above capacity after admitting {key}")
        cls = pool.accelerator_class
        for q in chain(w.queue):
            lim = queues[q].limit.get(cls)
            if lim is not None and alloc[q, cls] > lim:
                raise InvariantError(f"queue {q} above its {cls} limit after admitting {key}")
        if pool.watts_per_accelerator > 0 and site.power_budget_watts is not None:
            used = sum(
                acc_used * pools_by_node_watts
                for acc_used, pools_by_node_watts in _site_power(snap, site.name, acc)
            )
            if used > site.power_budget_watts + 1e-6:
                raise InvariantError(f"site {site.name} above power budget after {key}")


def _site_power(snap: Snapshot, site: str, acc: dict[str, int]) -> list[tuple[int, float]]:
    pools = {p.name: p for p in snap.pools if p.site == site}
    return [
        (acc[n.name], pools[n.pool].watts_per_accelerator) for n in snap.nodes if n.pool in pools
    ]
