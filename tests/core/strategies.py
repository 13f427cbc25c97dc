"""Hypothesis strategies: random fleets, queue trees and workload mixes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from gpufleet.core import Node, Placement, Pool, Queue, Residency, Site, Workload

CLASSES = ("nvidia-h100", "nvidia-a100")
JURISDICTIONS = {"DE": ("EU",), "FR": ("EU",), "US": ("NA",), "CH": ()}
CERTS = ("c5", "iso27001")
TOPOLOGIES = ((), ("rack",), ("rack", "nvlink"))


@dataclass(frozen=True)
class Fleet:
    sites: tuple[Site, ...]
    pools: tuple[Pool, ...]
    nodes: tuple[Node, ...]
    queues: tuple[Queue, ...]

    @property
    def leaves(self) -> list[str]:
        parents = {q.parent for q in self.queues}
        return [q.name for q in self.queues if q.name not in parents]


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    n_sites = draw(st.integers(1, 3))
    sites = []
    for s in range(n_sites):
        jur = draw(st.sampled_from(sorted(JURISDICTIONS)))
        sites.append(
            Site(
                name=f"s{s}",
                jurisdiction=jur,
                regions=JURISDICTIONS[jur],
                certifications=frozenset(draw(st.sets(st.sampled_from(CERTS)))),
                schedulable=draw(st.sampled_from([True, True, True, False])),
                connected=draw(st.sampled_from([True, True, True, True, False])),
                power_budget_watts=draw(st.none() | st.integers(0, 40).map(lambda k: k * 700.0)),
            )
        )
    pools = []
    nodes = []
    for site in sites:
        for k in range(draw(st.integers(1, 2))):
            keys = draw(st.sampled_from(TOPOLOGIES))
            pool = Pool(
                name=f"{site.name}-p{k}",
                site=site.name,
                accelerator_class=draw(st.sampled_from(CLASSES)),
                watts_per_accelerator=draw(st.sampled_from([0.0, 700.0])),
                cost_per_accelerator_hour=draw(st.integers(0, 3)),
                topology_keys=keys,
            )
            pools.append(pool)
            for i in range(draw(st.integers(0, 6))):
                nodes.append(
                    Node(
                        name=f"{pool.name}-n{i}",
                        pool=pool.name,
                        accelerators=draw(st.sampled_from([4, 8, 8])),
                        cpu_millis=draw(st.sampled_from([16_000, 64_000])),
                        memory_bytes=draw(st.sampled_from([64, 512])) * 2**30,
                        pods=draw(st.sampled_from([2, 8, 110])),
                        topology=tuple(draw(st.sampled_from(["a", "b"])) for _ in keys),
                        ready=draw(st.sampled_from([True, True, True, True, False])),
                    )
                )
    queues = []
    for t in range(draw(st.integers(1, 2))):
        top = f"d{t}"
        queues.append(draw(_queue(top, None)))
        for c in range(draw(st.integers(0, 3))):
            queues.append(draw(_queue(f"{top}-t{c}", top)))
    return Fleet(tuple(sites), tuple(pools), tuple(nodes), tuple(queues))


@st.composite
def _queue(draw: st.DrawFn, name: str, parent: str | None) -> Queue:
    deserved = {c: draw(st.sampled_from([0, 8, 16, 32])) for c in CLASSES}
    limit = {}
    for c in CLASSES:
        extra = draw(st.none() | st.sampled_from([0, 8, 24]))
        if extra is not None:
            limit[c] = deserved[c] + extra
    return Queue(
        name=name,
        parent=parent,
        deserved=deserved,
        limit=limit,
        over_quota_weight={c: draw(st.sampled_from([0.0, 1.0, 1.0, 3.0])) for c in CLASSES},
        priority=draw(st.integers(0, 2)),
        reclaimable=draw(st.sampled_from([True, True, False])),
        min_runtime_seconds=draw(st.sampled_from([0.0, 0.0, 50.0])),
        allowed_sites=draw(
            st.sampled_from([None, None, None, frozenset({"s0"}), frozenset({"s0", "s1"})])
        ),
        allowed_jurisdictions=draw(
            st.sampled_from([None, None, None, frozenset({"DE", "FR"}), frozenset({"US"})])
        ),
        **draw(time_rules()),
    )


@st.composite
def workloads(draw: st.DrawFn, fleet: Fleet, prefix: str, now: float) -> list[Workload]:
    out = []
    leaves = fleet.leaves
    for i in range(draw(st.integers(0, 8))):
        replicas = draw(st.integers(1, 4))
        classes = draw(st.lists(st.sampled_from(CLASSES), min_size=1, max_size=2, unique=True))
        residency = draw(
            st.sampled_from(
                [
                    Residency(),
                    Residency(),
                    Residency(),
                    Residency(regions=frozenset({"EU"})),
                    Residency(jurisdictions=frozenset({"US"})),
                    Residency(certifications=frozenset({"c5"})),
                ]
            )
        )
        out.append(
            Workload(
                key=f"ns/{prefix}-{i}",
                queue=draw(st.sampled_from(leaves)),
                replicas=replicas,
                min_replicas=draw(st.integers(1, replicas)),
                accelerators_per_replica=draw(st.sampled_from([1, 2, 4, 8])),
                accelerator_classes=tuple(classes),
                cpu_millis_per_replica=draw(st.sampled_from([0, 4000, 20_000])),
                memory_bytes_per_replica=draw(st.sampled_from([0, 16 * 2**30])),
                priority=draw(st.integers(0, 3)),
                preemptible=draw(st.sampled_from([True, True, False])),
                created_at=now + i * 0.001,
                residency=residency,
                required_topology=draw(st.sampled_from([None, None, "rack", "nvlink"])),
                preferred_topology=draw(st.sampled_from([None, "rack"])),
                site_preferences=tuple(
                    draw(st.lists(st.sampled_from(["s0", "s1", "s2"]), max_size=2, unique=True))
                ),
            )
        )
    return out


def start(w: Workload, site: str, pool: str, nodes: tuple[str, ...], now: float) -> Workload:
    return replace(w, placement=Placement(site, pool, nodes, now))


def requeue(w: Workload, now: float) -> Workload:
    """Back to pending after an eviction at `now`, which the eviction cap counts."""
    return replace(w, placement=None, eviction_times=(*w.eviction_times, now))


@st.composite
def time_rules(draw: st.DrawFn) -> dict[str, Any]:
    """The time-based Queue fields, each rule sometimes off."""
    return {
        "present_weight_seconds": draw(st.sampled_from([math.inf, math.inf, 60.0])),
        "wait_credit_seconds": draw(st.sampled_from([math.inf, math.inf, 120.0])),
        "max_wait_seconds": draw(st.sampled_from([math.inf, math.inf, 300.0])),
        "reclaim_delay_seconds": draw(st.sampled_from([0.0, 0.0, 45.0])),
        "reclaim_margin": draw(st.sampled_from([0.0, 0.0, 0.25])),
        "max_evictions": draw(st.sampled_from([None, 1, 1, 2])),
        "eviction_window_seconds": draw(st.sampled_from([math.inf, 100.0])),
    }


@st.composite
def contended_fleets(draw: st.DrawFn) -> Fleet:
    """One site and class, deserved shares that fit the capacity: where reclaim happens."""
    n_nodes = draw(st.integers(2, 8))
    site = Site(name="s0", jurisdiction="DE", regions=("EU",))
    pool = Pool(name="s0-p0", site="s0", accelerator_class=CLASSES[0], topology_keys=("rack",))
    nodes = tuple(
        Node(
            name=f"n{i}",
            pool=pool.name,
            accelerators=8,
            cpu_millis=64_000,
            memory_bytes=512 * 2**30,
            pods=110,
            topology=(f"r{i // 2}",),
        )
        for i in range(n_nodes)
    )
    budget = n_nodes * 8
    queues: list[Queue] = []
    nested = draw(st.booleans())
    parents: list[str | None] = [None]
    if nested:
        half = {CLASSES[0]: budget // 2}
        queues = [Queue(name="d0", deserved=half), Queue(name="d1", deserved=half)]
        parents = ["d0", "d1"]
    for t in range(draw(st.integers(2, 4))):
        share = 0 if t == 0 else draw(st.sampled_from([8, 16]))
        share = min(share, budget)
        budget -= share
        queues.append(
            Queue(
                name=f"q{t}",
                parent=draw(st.sampled_from(parents)),
                deserved={CLASSES[0]: share},
                over_quota_weight={CLASSES[0]: draw(st.sampled_from([0.0, 1.0, 2.0]))},
                reclaimable=draw(st.sampled_from([True, True, True, False])),
                min_runtime_seconds=draw(st.sampled_from([0.0, 0.0, 50.0])),
                **draw(time_rules()),
            )
        )
    if nested:
        # Parents without children would be leaves holding no work; keep the tree honest.
        used = {q.parent for q in queues}
        queues = [q for q in queues if q.parent is not None or q.name in used]
    return Fleet((site,), (pool,), nodes, tuple(queues))


@st.composite
def contended_workloads(draw: st.DrawFn, fleet: Fleet, prefix: str, now: float) -> list[Workload]:
    out = []
    # The first wave floods one queue (it borrows everything idle); later waves
    # come from everyone, so queues below deserved must reclaim.
    first = prefix == "c0"
    for i in range(draw(st.integers(3, 8) if first else st.integers(0, 6))):
        replicas = draw(st.integers(1, 3))
        out.append(
            Workload(
                key=f"ns/{prefix}-{i}",
                queue=fleet.leaves[0] if first else draw(st.sampled_from(fleet.leaves)),
                replicas=replicas,
                min_replicas=draw(st.integers(1, replicas)),
                accelerators_per_replica=draw(st.sampled_from([2, 4, 8])),
                accelerator_classes=(CLASSES[0],),
                priority=draw(st.integers(0, 2)),
                preemptible=draw(st.sampled_from([True, True, True, False])),
                created_at=now + i * 0.001,
                required_topology=draw(st.sampled_from([None, None, "rack"])),
                checkpoint_interval_seconds=draw(st.sampled_from([None, None, 20.0])),
            )
        )
    return out
