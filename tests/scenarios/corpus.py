"""Load the YAML scenario corpus into core model objects and expectations.

A file holds one scenario (a mapping) or several (`scenarios: [...]`). Shape:

    name: gang-all-or-nothing           # unique across the corpus
    rule: gang                          # which rule of the issue it covers
    now: 1000                           # optional, default 1000
    sites:  [{name, jurisdiction, regions, certifications, schedulable,
              connected, power_budget_watts}]
    pools:  [{name, site, accelerator_class, watts_per_accelerator,
              cost_per_accelerator_hour, topology_keys}]
    nodes:  [{name, pool, accelerators, cpu_millis, memory_gib, pods, topology, ready}]
            # or a group: {prefix: n, count: 4, pool: p, ...} -> n0..n3;
            # `topology` may use {i} (node number) and {i//K} (number // K).
    queues: [{name, parent, deserved, limit, over_quota_weight, priority,
              reclaimable, min_runtime_seconds, allowed_sites, allowed_jurisdictions,
              usage, fair_usage, present_weight_seconds, wait_credit_seconds,
              max_wait_seconds,
              starved_since, reclaim_delay_seconds, reclaim_margin, max_evictions,
              eviction_window_seconds}]   # time-based fields default to "rule off"
    workloads: [{key, queue, replicas, min_replicas (default replicas),
                 accelerators (per replica), classes, cpu_millis, memory_gib,
                 priority, preemptible, created_at, residency: {jurisdictions,
                 regions, certifications}, required_topology, preferred_topology,
                 site_preferences, placement: {pool, nodes, started_at},
                 checkpoint_interval_seconds, eviction_times: [t, ...]}]
    expect:
      admitted: {key: {pool, site, nodes: [...], replicas: N}}   # fields optional
      only_admitted: true        # no admissions beyond those listed (default true)
      pending: [key, ...]        # must not be admitted
      evicted: {key: Reclaimed|Preempted}   # exactly these evictions
      verdicts: {key: {site: RuleName}}
      fair_shares: {queue: {class: number}}
      order: [key, ...]          # prefix of the order workloads were considered in
      starved: [queue, ...]      # exactly the queues left starved (reclaim clock)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpufleet.core import Node, Placement, Pool, Queue, Residency, Site, Snapshot, Workload

GIB = 1024**3
DEFAULT_NOW = 1000.0
CORPUS = Path(__file__).parent


@dataclass(frozen=True)
class Scenario:
    name: str
    rule: str
    source: str
    snapshot: Snapshot
    expect: Mapping[str, Any]


def _site(d: dict[str, Any]) -> Site:
    return Site(
        name=d["name"],
        jurisdiction=d.get("jurisdiction", "DE"),
        regions=tuple(d.get("regions", ["EU"])),
        certifications=frozenset(d.get("certifications", [])),
        schedulable=d.get("schedulable", True),
        connected=d.get("connected", True),
        power_budget_watts=d.get("power_budget_watts"),
        perimeter=d.get("perimeter"),
    )


def _pool(d: dict[str, Any]) -> Pool:
    return Pool(
        name=d["name"],
        site=d["site"],
        accelerator_class=d.get("accelerator_class", "nvidia-h100"),
        watts_per_accelerator=float(d.get("watts_per_accelerator", 0.0)),
        cost_per_accelerator_hour=float(d.get("cost_per_accelerator_hour", 0.0)),
        topology_keys=tuple(d.get("topology_keys", [])),
    )


_TEMPLATE = re.compile(r"\{i(?://(\d+))?\}")


def _expand(value: str, i: int) -> str:
    return _TEMPLATE.sub(lambda m: str(i // int(m.group(1)) if m.group(1) else i), value)


def _nodes(d: dict[str, Any]) -> Iterator[Node]:
    names = (
        [(d["name"], 0)]
        if "name" in d
        else [(f"{d['prefix']}{i}", i) for i in range(int(d["count"]))]
    )
    for name, i in names:
        yield Node(
            name=name,
            pool=d["pool"],
            accelerators=int(d.get("accelerators", 8)),
            cpu_millis=int(d.get("cpu_millis", 128_000)),
            memory_bytes=int(float(d.get("memory_gib", 1024)) * GIB),
            pods=int(d.get("pods", 110)),
            topology=tuple(_expand(str(t), i) for t in d.get("topology", [])),
            ready=d.get("ready", True),
        )


def _queue(d: dict[str, Any]) -> Queue:
    return Queue(
        name=d["name"],
        parent=d.get("parent"),
        deserved=dict(d.get("deserved", {})),
        limit=dict(d.get("limit", {})),
        over_quota_weight=dict(d.get("over_quota_weight", {})),
        priority=int(d.get("priority", 0)),
        reclaimable=d.get("reclaimable", True),
        min_runtime_seconds=float(d.get("min_runtime_seconds", 0)),
        allowed_sites=frozenset(d["allowed_sites"]) if "allowed_sites" in d else None,
        allowed_jurisdictions=(
            frozenset(d["allowed_jurisdictions"]) if "allowed_jurisdictions" in d else None
        ),
        usage={k: float(v) for k, v in d.get("usage", {}).items()},
        fair_usage={k: float(v) for k, v in d.get("fair_usage", {}).items()},
        present_weight_seconds=float(d.get("present_weight_seconds", "inf")),
        wait_credit_seconds=float(d.get("wait_credit_seconds", "inf")),
        max_wait_seconds=float(d.get("max_wait_seconds", "inf")),
        starved_since=float(d["starved_since"]) if "starved_since" in d else None,
        reclaim_delay_seconds=float(d.get("reclaim_delay_seconds", 0)),
        reclaim_margin=float(d.get("reclaim_margin", 0)),
        max_evictions=int(d["max_evictions"]) if "max_evictions" in d else None,
        eviction_window_seconds=float(d.get("eviction_window_seconds", "inf")),
    )


def _workload(d: dict[str, Any], pools: Mapping[str, Pool]) -> Workload:
    res = d.get("residency", {})
    placement = None
    if "placement" in d:
        pl = d["placement"]
        placement = Placement(
            site=pools[pl["pool"]].site,
            pool=pl["pool"],
            nodes=tuple(pl["nodes"]),
            started_at=float(pl.get("started_at", 0)),
        )
    replicas = int(d.get("replicas", 1))
    return Workload(
        key=d["key"],
        queue=d["queue"],
        replicas=replicas,
        min_replicas=int(d.get("min_replicas", replicas)),
        accelerators_per_replica=int(d.get("accelerators", 8)),
        accelerator_classes=tuple(d.get("classes", ["nvidia-h100"])),
        cpu_millis_per_replica=int(d.get("cpu_millis", 0)),
        memory_bytes_per_replica=int(float(d.get("memory_gib", 0)) * GIB),
        priority=int(d.get("priority", 0)),
        preemptible=d.get("preemptible", True),
        created_at=float(d.get("created_at", 0)),
        residency=Residency(
            jurisdictions=frozenset(res.get("jurisdictions", [])),
            regions=frozenset(res.get("regions", [])),
            certifications=frozenset(res.get("certifications", [])),
        ),
        required_topology=d.get("required_topology"),
        preferred_topology=d.get("preferred_topology"),
        site_preferences=tuple(d.get("site_preferences", [])),
        placement=placement,
        checkpoint_interval_seconds=(
            float(d["checkpoint_interval_seconds"]) if "checkpoint_interval_seconds" in d else None
        ),
        eviction_times=tuple(float(t) for t in d.get("eviction_times", [])),
    )


def build(doc: dict[str, Any], source: str) -> Scenario:
    pools = [_pool(p) for p in doc.get("pools", [])]
    by_name = {p.name: p for p in pools}
    snapshot = Snapshot.build(
        sites=[_site(s) for s in doc.get("sites", [])],
        pools=pools,
        nodes=[n for group in doc.get("nodes", []) for n in _nodes(group)],
        queues=[_queue(q) for q in doc.get("queues", [])],
        workloads=[_workload(w, by_name) for w in doc.get("workloads", [])],
        now=float(doc.get("now", DEFAULT_NOW)),
    )
    return Scenario(doc["name"], doc.get("rule", ""), source, snapshot, doc.get("expect", {}))


def load_corpus(root: Path = CORPUS) -> list[Scenario]:
    out: list[Scenario] = []
    for path in sorted(root.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        docs = data["scenarios"] if isinstance(data, dict) and "scenarios" in data else [data]
        out.extend(build(doc, path.name) for doc in docs)
    return out
