"""From the cache's API objects to the core's input, and what could not be translated.

Every object is parsed with the API models; one that does not parse is set
aside with the validation message (reported on its status) and never reaches
the core, so a malformed object can neither crash the operator nor be
scheduled on a guess. Objects that parse but cannot be used with the rest of
the fleet are set aside the same way, each with the rule it breaks (`RULES`):
only that object stops, the rest of the fleet keeps scheduling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from gpufleet import core
from gpufleet.api import regions
from gpufleet.api.v1alpha1 import (
    GpuPool,
    Placement,
    Queue,
    Residency,
    Site,
    Workload,
    WorkloadSpec,
    WorkloadStatus,
)
from gpufleet.api.v1alpha1.queue import Fairness, Preemption
from gpufleet.core.fairness import decay_factor
from gpufleet.observed.cache import HUB, CacheView
from gpufleet.observed.podrequests import (
    ACCELERATOR_RESOURCES,
    replica_requests,
    template_accelerator_field,
)
from gpufleet.observed.records import NodeRecord, PodRecord
from gpufleet.observed.selectors import matches, matches_map

RUNNING_PHASES = frozenset({"Admitted", "Running"})

# The rules an object is set aside for, beyond its schema (reported as the reason of its
# Valid condition).
INVALID_SPEC = "InvalidSpec"  # did not parse, or the core refused it
SITE_NOT_FOUND = "SiteNotFound"  # a GpuPool at a Site that does not exist or is set aside
CLUSTER_CLAIMED = "ClusterClaimed"  # a Site on a cluster an earlier Site already covers
PARENT_NOT_FOUND = "ParentNotFound"  # a Queue whose parent does not exist
PARENT_CYCLE = "ParentCycle"  # a Queue on a cycle of parents
PARENT_HAS_WORKLOADS = "ParentHasWorkloads"  # a child under a leaf that holds admitted work
ANCESTOR_SET_ASIDE = "AncestorSetAside"  # a Queue below one set aside

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


# Parsed models by (kind, key) with the resourceVersion they were parsed at: an object that
# did not change is not validated again, which keeps a cycle over thousands of workloads cheap.
ParseCache = dict[tuple[str, str], tuple[str, Any, str | None]]


@dataclass
class Derived:
    """What a workload's translation computes from its parsed model alone, kept while the
    model is the same object (the parse cache hands out the same model until the object's
    resourceVersion changes): its template's pod requests dominate a fleet's translation."""

    model: Workload
    accelerators: tuple[str, ...] | None = None  # the names `asks` was found against
    asks: str | None = None
    # The core model, or the refusal's (kind, name, field, rule): an exception kept and
    # raised again would keep every translation's frames alive through its traceback.
    made: tuple[float, core.Placement | None, core.Workload | tuple[str, str, str, str]] | None = (
        None
    )

    def template_asks(self, accelerators: tuple[str, ...]) -> str | None:
        if self.accelerators != accelerators:
            self.accelerators = accelerators
            self.asks = template_accelerator_field(self.model.spec.template.spec, accelerators)
        return self.asks

    def core_workload(
        self, key: str, created_at: float, placement: core.Placement | None
    ) -> core.Workload:
        """Raises the `core.ModelError` the model gives, as `_core_workload` does."""
        made = self.made
        if made is None or made[0] != created_at or made[1] != placement:
            result: core.Workload | tuple[str, str, str, str]
            try:
                result = _core_workload(
                    key, self.model.spec, self.model.status, created_at, placement
                )
            except core.ModelError as exc:
                result = (exc.kind, exc.name, exc.field, exc.rule)
            made = self.made = (created_at, placement, result)
        if isinstance(made[2], tuple):
            raise core.ModelError(*made[2])
        return made[2]


DerivedCache = dict[str, Derived]


# (cluster, node) -> the node's record, and the Sites and GpuPools that select it.
Claims = dict[tuple[str, str], tuple[NodeRecord, tuple[str, ...], tuple[str, ...]]]
# What claims follow from: each Site's cluster and selector, each pool's site and selector.
ClaimsBasis = tuple[tuple[tuple[str, str, str], ...], tuple[tuple[str, str, str], ...]]


@dataclass
class Inputs:
    sites: list[core.Site] = field(default_factory=list)
    pools: list[core.Pool] = field(default_factory=list)
    nodes: list[core.Node] = field(default_factory=list)
    queues: list[core.Queue] = field(default_factory=list)
    workloads: list[core.Workload] = field(default_factory=list)
    site_models: dict[str, Site] = field(default_factory=dict)  # the Sites in use
    # Every Site that parsed, set aside or not: member Sites keep their connections (their
    # cluster's identity is how a claimed cluster is recognised).
    parsed_sites: dict[str, Site] = field(default_factory=dict)
    pool_models: dict[str, GpuPool] = field(default_factory=dict)
    queue_models: dict[str, Queue] = field(default_factory=dict)
    workload_models: dict[str, Workload] = field(default_factory=dict)
    site_cluster: dict[str, str] = field(default_factory=dict)
    # Workloads the core does not see, with the fleet-wide verdict that says why.
    blocked: dict[str, core.SiteVerdict] = field(default_factory=dict)
    # Objects set aside: (kind, name) -> message; `rules` holds the rule (default INVALID_SPEC).
    invalid: dict[tuple[str, str], str] = field(default_factory=dict)
    rules: dict[tuple[str, str], str] = field(default_factory=dict)
    # Nodes claimed by more than one Site or GpuPool, used by none: ("Site"|"GpuPool", name)
    # -> one line per node naming the other claimant.
    overlaps: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # Clusters whose Site is in use: the only ones whose pods the lifecycle touches.
    usable_clusters: set[str] = field(default_factory=set)
    parsed: ParseCache = field(default_factory=dict)
    derived: DerivedCache = field(default_factory=dict)
    # What `_nodes` found selects each node, and from what: for the next translation.
    claims: Claims = field(default_factory=dict)
    claims_basis: ClaimsBasis | None = None
    # Figures that follow from `workload_models` alone, worked out once by their reader:
    # Inputs reused for a later cycle keep the same models, and this with them.
    from_workloads: dict[str, Any] = field(default_factory=dict)

    def set_aside(self, kind: str, key: str, rule: str, message: str) -> None:
        if (kind, key) not in self.invalid:
            self.invalid[(kind, key)] = message
            self.rules[(kind, key)] = rule

    def rule(self, kind: str, key: str) -> str:
        return self.rules.get((kind, key), INVALID_SPEC)


def cluster_of(site: Site) -> str:
    """Member sites get a connection of their own, named after the site."""
    name = site.metadata.name or ""
    return HUB if site.spec.nodes.local is not None else name


def core_node_name(cluster: str, node: str) -> str:
    """Node names are unique per cluster only; the core sees them qualified."""
    return f"{cluster}|{node}"


def real_node_name(core_name: str) -> str:
    return core_name.split("|", 1)[1]


def timestamp(value: datetime | str | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, str):
        return _parse_time(value)
    return value.timestamp()


@lru_cache(maxsize=65536)
def _parse_time(value: str) -> float:
    # Every cycle reads every workload's creation time; the API writes them to the second,
    # so a fleet holds far fewer distinct ones than workloads.
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _parse(kind: str, model: Any, key: str, body: dict[str, Any], out: Inputs) -> Any | None:
    version = str(body.get("metadata", {}).get("resourceVersion", ""))
    cached = out.parsed.get((kind, key))
    if cached is not None and cached[0] == version and version:
        if cached[2] is not None:
            out.invalid[(kind, key)] = cached[2]
        return cached[1]
    parsed, error = None, None
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        error = f"{path}: {first['msg']}" + (
            f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        )
        out.invalid[(kind, key)] = error
    out.parsed[(kind, key)] = (version, parsed, error)
    return parsed


def _error_verdict(rule: str, message: str, change: str | None = None) -> core.SiteVerdict:
    return core.SiteVerdict(site="", rule=rule, message=message, nearest_change=change)


Excluded = dict[tuple[str, str], tuple[str, str]]  # (kind, key) -> (rule, message)


def translate(
    view: CacheView,
    namespace_labels: dict[str, dict[str, str]] | None = None,
    parsed: ParseCache | None = None,
    exclude: Excluded | None = None,
    now: float | None = None,
    derived: DerivedCache | None = None,
    previous: Inputs | None = None,
) -> Inputs:
    """`parsed`, kept by the caller between cycles, saves re-validating unchanged objects;
    `derived`, kept the same way, saves re-deriving their requests and core models;
    `previous`, the last translation, saves finding which Sites and pools select each
    unchanged node.

    `exclude` sets objects aside from the start, with their rule: the loop passes what the
    core refused (`core.ModelError`) so that it is left out with everything that follows
    from it (a running workload's pods then count as foreign on their nodes).

    `now`: the cycle's time, to which the decayed usage read from Queue status is brought
    (None: taken as written).
    """
    out = Inputs(
        parsed=parsed if parsed is not None else {},
        derived=derived if derived is not None else {},
    )
    for (kind, key), (rule, message) in (exclude or {}).items():
        out.set_aside(kind, key, rule, message)
    _sites(view, out)
    for key, body in sorted(view.pools.items()):
        pool = _parse("GpuPool", GpuPool, key, body, out)
        if pool is None or ("GpuPool", key) in out.invalid:
            continue
        if pool.spec.site not in out.site_models:
            why = "is set aside" if pool.spec.site in view.sites else "does not exist"
            out.set_aside(
                "GpuPool", key, SITE_NOT_FOUND, f"spec.site: Site {pool.spec.site!r} {why}"
            )
            continue
        out.pool_models[key] = pool
        out.pools.append(
            core.Pool(
                name=key,
                site=pool.spec.site,
                accelerator_class=pool.spec.accelerator_class,
                watts_per_accelerator=pool.spec.watts_per_accelerator or 0.0,
                cost_per_accelerator_hour=pool.spec.cost_per_accelerator_hour or 0.0,
                topology_keys=tuple(pool.spec.topology_keys or ()),
            )
        )

    for key, body in sorted(view.queues.items()):
        queue = _parse("Queue", Queue, key, body, out)
        if queue is None:
            continue
        out.queue_models[key] = queue
    _queues(view, out, now)
    _workloads(view, out, namespace_labels)
    _nodes(view, out, previous)
    live = (
        {("Site", k) for k in view.sites}
        | {("GpuPool", k) for k in view.pools}
        | {("Queue", k) for k in view.queues}
        | {("Workload", k) for k in view.workloads}
    )
    for gone in set(out.parsed) - live:
        del out.parsed[gone]
    for gone_key in set(out.derived) - set(view.workloads):
        del out.derived[gone_key]
    return out


def _sites(view: CacheView, out: Inputs) -> None:
    """Parse the Sites; one cluster, one Site: a member Site on a cluster (told apart by its
    kube-system UID) that an earlier Site already covers is set aside, so two Sites can never
    give one node two jurisdictions or sweep each other's pods."""
    parsed: list[tuple[str, Site, dict[str, Any]]] = []
    for key, body in sorted(view.sites.items()):
        site = _parse("Site", Site, key, body, out)
        if site is not None:
            out.parsed_sites[key] = site
        if site is not None and ("Site", key) not in out.invalid:
            parsed.append((key, site, body))
    hub = view.clusters.get(HUB)
    owner: dict[str, str] = {}  # cluster identity -> the Site that covers it
    if hub is not None and hub.identity and any(s.spec.nodes.local for _, s, _ in parsed):
        owner[hub.identity] = "the local Sites of the operator's own cluster"
    # Earlier-created Sites keep their cluster; the name breaks ties.
    for key, site, _ in sorted(
        parsed, key=lambda e: (timestamp(e[2].get("metadata", {}).get("creationTimestamp")), e[0])
    ):
        cluster = cluster_of(site)
        state = view.clusters.get(cluster)
        if cluster != HUB and state is not None and state.identity:
            first = owner.setdefault(state.identity, f"Site {key!r}")
            if first != f"Site {key!r}":
                out.set_aside(
                    "Site",
                    key,
                    CLUSTER_CLAIMED,
                    f"its cluster (kube-system UID {state.identity}) is already covered by {first}",
                )
                continue
        out.site_models[key] = site
        out.site_cluster[key] = cluster
    for key, site in sorted(out.site_models.items()):
        cluster = out.site_cluster[key]
        state = view.clusters.get(cluster)
        if state is not None and state.connected and {"nodes", "pods"} <= state.synced:
            out.usable_clusters.add(cluster)
        budget = site.spec.power_budget_kw
        out.sites.append(
            core.Site(
                name=key,
                jurisdiction=site.spec.jurisdiction,
                regions=tuple(site.spec.regions or ()),
                certifications=frozenset(site.spec.certifications or ()),
                schedulable=site.spec.schedulable,
                connected=bool(state and state.connected and {"nodes", "pods"} <= state.synced),
                power_budget_watts=None if budget is None else budget * 1000.0,
                perimeter=site.spec.perimeter,
            )
        )


def _queue_faults(view: CacheView, out: Inputs) -> None:
    """Set aside every Queue the tree cannot hold: a missing parent, a cycle of parents, a
    child under a leaf that holds admitted work, and everything below one set aside.

    A queue with a missing parent is never treated as a root: it would escape its
    ancestors' limits. A child under a busy leaf would turn that leaf's running work into
    work on a queue with children; the child waits (set aside) until the work is done.
    """
    models = {k: q for k, q in out.queue_models.items() if ("Queue", k) not in out.invalid}
    busy = _busy_queues(view)
    for key, queue in sorted(models.items()):
        parent = queue.spec.parent
        if parent is None:
            continue
        if parent not in models:
            if ("Queue", parent) in out.invalid:
                continue  # below a set-aside queue: handled with the descendants
            out.set_aside("Queue", key, PARENT_NOT_FOUND, f"spec.parent: no Queue {parent!r}")
    for key in sorted(models):
        seen: list[str] = []
        at: str | None = key
        while at is not None and at in models and at not in seen:
            seen.append(at)
            at = models[at].spec.parent
        if at is not None and at in seen:
            ring = seen[seen.index(at) :]
            if key in ring:
                out.set_aside(
                    "Queue",
                    key,
                    PARENT_CYCLE,
                    "spec.parent: the parents form a cycle: " + " -> ".join([*ring, at]),
                )
    for key, queue in sorted(models.items()):
        parent = queue.spec.parent
        if parent is not None and parent in busy and ("Queue", key) not in out.invalid:
            out.set_aside(
                "Queue",
                key,
                PARENT_HAS_WORKLOADS,
                f"spec.parent: Queue {parent!r} holds admitted workloads; a queue gets"
                " children only once its own work is done",
            )
    # Below a set-aside queue, nothing has a chain to the root: set aside, top down.
    changed = True
    while changed:
        changed = False
        for key, queue in sorted(models.items()):
            parent = queue.spec.parent
            if (
                ("Queue", key) not in out.invalid
                and parent is not None
                and ("Queue", parent) in out.invalid
            ):
                out.set_aside(
                    "Queue", key, ANCESTOR_SET_ASIDE, f"spec.parent: Queue {parent!r} is set aside"
                )
                changed = True


def _busy_queues(view: CacheView) -> set[str]:
    """Queues that hold admitted or running workloads, read from the raw objects (the
    workloads are parsed after the queues)."""
    out = set()
    for body in view.workloads.values():
        status = body.get("status") or {}
        spec = body.get("spec") or {}
        if status.get("placement") and (status.get("phase") or "Pending") in RUNNING_PHASES:
            queue = spec.get("queue")
            if isinstance(queue, str):
                out.add(queue)
    return out


def _queues(view: CacheView, out: Inputs, now: float | None) -> None:
    _queue_faults(view, out)
    for key, queue in sorted(out.queue_models.items()):
        if ("Queue", key) in out.invalid:
            continue
        spec = queue.spec
        resources = spec.resources or []
        jurisdictions: set[str] | None = None
        if spec.allowed_jurisdictions is not None or spec.allowed_regions is not None:
            jurisdictions = set(spec.allowed_jurisdictions or ())
            for region in spec.allowed_regions or ():
                jurisdictions |= regions.REGIONS.get(region, frozenset())
        preemption = spec.preemption or Preemption()
        fair = spec.fairness or Fairness()
        # The state of fairness over time lives in the Queue's status (written every cycle
        # by the summary), so a restarted operator carries on where it stopped.
        status = queue.status
        starved = status.starved_since if status else None
        usage, fair_usage = queue_history(queue, now)
        out.queues.append(
            core.Queue(
                name=key,
                parent=spec.parent,
                deserved={r.accelerator_class: r.deserved for r in resources},
                limit={r.accelerator_class: r.limit for r in resources if r.limit is not None},
                over_quota_weight={r.accelerator_class: r.over_quota_weight for r in resources},
                priority=spec.priority,
                reclaimable=preemption.reclaimable,
                min_runtime_seconds=float(preemption.min_runtime_seconds),
                usage=usage,
                fair_usage=fair_usage,
                present_weight_seconds=float(fair.present_weight_seconds),
                wait_credit_seconds=(
                    float(fair.wait_credit_seconds)
                    if fair.wait_credit_seconds is not None
                    else math.inf
                ),
                max_wait_seconds=(
                    float(fair.max_wait_seconds) if fair.max_wait_seconds is not None else math.inf
                ),
                starved_since=None if starved is None else timestamp(starved),
                reclaim_delay_seconds=float(preemption.reclaim_delay_seconds),
                reclaim_margin=preemption.reclaim_margin,
                max_evictions=preemption.max_evictions,
                eviction_window_seconds=float(preemption.eviction_window_seconds),
                allowed_sites=frozenset(spec.allowed_sites)
                if spec.allowed_sites is not None
                else None,
                allowed_jurisdictions=frozenset(jurisdictions)
                if jurisdictions is not None
                else None,
            )
        )


def queue_history(queue: Queue, now: float | None) -> tuple[dict[str, float], dict[str, float]]:
    """Decayed usage and fair usage per class from the Queue's status, brought to `now`.

    They were written at usageUpdatedAt; both decay alike until now (what happened since
    is not history yet: the cycle counts it as the present). None: taken as written."""
    status = queue.status
    if status is None:
        return {}, {}
    decay = 1.0
    if now is not None and status.usage_updated_at is not None:
        half_life = float((queue.spec.fairness or Fairness()).usage_half_life_seconds)
        decay = decay_factor(now - timestamp(status.usage_updated_at), half_life)
    used = status.resources or []
    return (
        {r.accelerator_class: r.usage * decay for r in used},
        {r.accelerator_class: r.fair_usage * decay for r in used},
    )


def with_statuses(last: Inputs, view: CacheView) -> Inputs | None:
    """`last` with the statuses of the Sites, GpuPools and Queues in `view`, whose specs
    and metadata are as `last` was translated from (the cache counts such writes apart).

    Of a status, translation reads only a Queue's fairness state (decayed usage, starved
    since), so this is what a whole translation would give. None when it may not be: an
    object set aside, or one that no longer parses (a full translation then says why)."""
    scratch = Inputs(parsed=last.parsed, derived=last.derived)
    tables: tuple[tuple[str, Any, dict[str, dict[str, Any]], dict[str, Any]], ...] = (
        ("Site", Site, view.sites, last.parsed_sites),
        ("GpuPool", GpuPool, view.pools, last.pool_models),
        ("Queue", Queue, view.queues, last.queue_models),
    )
    fresh: dict[str, dict[str, Any]] = {"Site": {}, "GpuPool": {}, "Queue": {}}
    for kind, model, bodies, models in tables:
        for key, body in bodies.items():
            version = str(body.get("metadata", {}).get("resourceVersion", ""))
            cached = last.parsed.get((kind, key))
            if cached is not None and version and cached[0] == version:
                continue
            if (kind, key) in last.invalid or key not in models:
                return None
            parsed = _parse(kind, model, key, body, scratch)
            if parsed is None or scratch.invalid:
                return None
            fresh[kind][key] = parsed
    if not any(fresh.values()):
        return last
    queue_models = {**last.queue_models, **fresh["Queue"]}
    queues = []
    for q in last.queues:
        status = queue_models[q.name].status
        starved = status.starved_since if status else None
        queues.append(replace(q, starved_since=None if starved is None else timestamp(starved)))
    sites = fresh["Site"]
    # Decayed usage is read from the new statuses by `history_at`, as for any reused Inputs.
    return replace(
        last,
        queues=queues,
        queue_models=queue_models,
        pool_models={**last.pool_models, **fresh["GpuPool"]},
        parsed_sites={**last.parsed_sites, **sites},
        site_models={k: sites.get(k, m) for k, m in last.site_models.items()},
    )


def history_at(out: Inputs, now: float | None) -> Inputs:
    """`out` (reused from an earlier cycle) with each queue's decayed usage read from its
    Queue's status and brought to `now` (None: as written); `out` itself is left as it is."""
    queues = []
    for q in out.queues:
        usage, fair_usage = queue_history(out.queue_models[q.name], now)
        queues.append(replace(q, usage=usage, fair_usage=fair_usage))
    return replace(out, queues=queues)


def namespace_allowed(queue: Queue, namespace: str, labels: dict[str, str] | None) -> bool:
    if queue.spec.namespaces is not None:
        return namespace in queue.spec.namespaces
    if queue.spec.namespace_selector is not None:
        return labels is not None and matches(queue.spec.namespace_selector, labels)
    return False


def _workloads(
    view: CacheView, out: Inputs, namespace_labels: dict[str, dict[str, str]] | None
) -> None:
    """Parse, gate and convert every workload; the ones kept out go to `out.blocked`."""
    with_children = core.queues_with_children(out.queues)
    accelerators = tuple(
        sorted(
            set(ACCELERATOR_RESOURCES) | {p.spec.resource_name for p in out.pool_models.values()}
        )
    )
    for key, body in sorted(view.workloads.items()):
        wl = _parse("Workload", Workload, key, body, out)
        if wl is None:
            out.blocked[key] = _error_verdict(
                "InvalidSpec", out.invalid[("Workload", key)], "fix the field named"
            )
            continue
        out.workload_models[key] = wl
        derived = out.derived.get(key)
        if derived is None or derived.model is not wl:
            derived = out.derived[key] = Derived(wl)
        asks = derived.template_asks(accelerators)
        if asks is not None:
            out.set_aside(
                "Workload",
                key,
                INVALID_SPEC,
                f"{asks}: a Workload's accelerators come only from"
                " spec.acceleratorsPerReplica; remove them from the template",
            )
        if ("Workload", key) in out.invalid:
            # Refused by the core (see `translate`'s `exclude`): a waiting one says why; a
            # running one keeps running outside the core's accounting, as foreign pods do.
            if not (wl.status and wl.status.placement):
                out.blocked[key] = _error_verdict(
                    out.rule("Workload", key), out.invalid[("Workload", key)], "fix the field named"
                )
            continue
        gate = _gate(key, wl, out, with_children, namespace_labels)
        if isinstance(gate, core.SiteVerdict):
            out.blocked[key] = gate
            continue
        if gate is None:
            continue
        placement = _core_placement(gate.placement, out) if gate.placement is not None else None
        created_at = timestamp(body.get("metadata", {}).get("creationTimestamp"))
        try:
            out.workloads.append(derived.core_workload(key, created_at, placement))
        except core.ModelError as exc:
            out.set_aside("Workload", key, INVALID_SPEC, str(exc))
            if placement is None:  # a running one keeps running, outside the accounting
                out.blocked[key] = _error_verdict(INVALID_SPEC, str(exc), "fix the field named")


@dataclass(frozen=True)
class _Considered:
    """A workload the core considers: waiting, or running at `placement`."""

    placement: Placement | None


def _gate(
    key: str,
    wl: Workload,
    out: Inputs,
    with_children: frozenset[str],
    namespace_labels: dict[str, dict[str, str]] | None,
) -> _Considered | core.SiteVerdict | None:
    """Whether the core considers the workload, the verdict that says why a waiting one may
    not be, or None for one left out without a word (finished, or placed nowhere known)."""
    status = wl.status
    phase = status.phase if status and status.phase else "Pending"
    if phase in FINISHED_PHASES or (phase == "Preempted" and not wl.spec.requeue_on_preemption):
        return None
    placement = status.placement if status else None
    if placement is None or phase not in RUNNING_PHASES:
        verdict = _submission_verdict(key, wl, out, with_children, namespace_labels)
        return verdict if verdict is not None else _Considered(None)
    # Running work whose queue vanished or is set aside keeps running; it is accounted
    # nowhere, and its pods hold their nodes as foreign pods do (see _nodes).
    if wl.spec.queue not in out.queue_models or ("Queue", wl.spec.queue) in out.invalid:
        return None
    if placement.pool not in out.pool_models or placement.site not in out.site_models:
        return None
    return _Considered(placement)


def _submission_verdict(
    key: str,
    wl: Workload,
    out: Inputs,
    with_children: frozenset[str],
    namespace_labels: dict[str, dict[str, str]] | None,
) -> core.SiteVerdict | None:
    """Why a waiting workload may not be submitted to its queue; None when it may."""
    name = wl.spec.queue
    queue = out.queue_models.get(name)
    if queue is None:
        return _error_verdict(
            "QueueNotFound", f"spec.queue names no Queue {name!r}", f"create Queue {name}"
        )
    if ("Queue", name) in out.invalid:
        return _error_verdict(
            "QueueSetAside",
            f"Queue {name!r} is set aside ({out.rule('Queue', name)}):"
            f" {out.invalid[('Queue', name)]}",
            f"fix Queue {name}",
        )
    if core.leaf_queue_violation(key, name, with_children) is not None:
        return _error_verdict(
            "QueueNotLeaf", f"Queue {name!r} has child queues; submit to one of them", None
        )
    ns = wl.metadata.namespace or ""
    if not namespace_allowed(queue, ns, (namespace_labels or {}).get(ns)):
        return _error_verdict(
            "NamespaceNotAllowed",
            f"namespace {ns!r} may not submit to Queue {name!r}",
            f"add {ns} to spec.namespaces of Queue {name}",
        )
    return None


def _core_placement(placement: Placement, out: Inputs) -> core.Placement:
    """A running placement in the core's terms: one qualified node per replica, by index."""
    cluster = out.site_cluster[placement.site]
    nodes = tuple(
        core_node_name(cluster, r.node) for r in sorted(placement.replicas, key=lambda r: r.index)
    )
    return core.Placement(
        site=placement.site,
        pool=placement.pool,
        nodes=nodes,
        started_at=timestamp(placement.admitted_at),
    )


def _core_workload(
    key: str,
    spec: WorkloadSpec,
    status: WorkloadStatus | None,
    created_at: float,
    placement: core.Placement | None,
) -> core.Workload:
    """The workload as the core models it; raises `core.ModelError` for a spec it refuses.

    Its past evictions come from the status, so a restarted operator keeps counting them
    against the queue's eviction cap."""
    min_replicas = spec.min_replicas if spec.min_replicas is not None else spec.replicas
    # The whole pod, as the node's kubelet will count it: init and sidecar containers too.
    pod = replica_requests(spec.template.spec, spec.cpu, spec.memory)
    return core.Workload(
        key=key,
        queue=spec.queue,
        replicas=spec.replicas,
        min_replicas=min(min_replicas, spec.replicas),
        accelerators_per_replica=spec.accelerators_per_replica,
        accelerator_classes=tuple(spec.accelerator_classes),
        cpu_millis_per_replica=pod.cpu_millis,
        memory_bytes_per_replica=pod.memory_bytes,
        priority=spec.priority,
        preemptible=spec.preemptible,
        created_at=created_at,
        residency=_core_residency(spec.residency),
        required_topology=spec.topology.required if spec.topology else None,
        preferred_topology=spec.topology.preferred if spec.topology else None,
        site_preferences=tuple(spec.site_preferences or ()),
        placement=placement,
        checkpoint_interval_seconds=(
            float(spec.checkpoint_interval_seconds)
            if spec.checkpoint_interval_seconds is not None
            else None
        ),
        eviction_times=tuple(
            timestamp(t) for t in ((status.eviction_times if status else None) or ())
        ),
    )


def _core_residency(residency: Residency | None) -> core.Residency:
    if residency is None:
        return core.Residency()
    return core.Residency(
        jurisdictions=frozenset(residency.jurisdictions or ()),
        regions=frozenset(residency.regions or ()),
        certifications=frozenset(residency.certifications or ()),
    )


def current_pod_keys(out: Inputs) -> set[tuple[str, int]]:
    """(workload key, epoch) of every placement the core counts as running."""
    result = set()
    for w in out.workloads:
        if w.placement is not None:
            model = out.workload_models[w.key]
            if model.status and model.status.placement:
                result.add((w.key, model.status.placement.epoch))
    return result


def _claims(
    view: CacheView, out: Inputs, previous: Inputs | None = None
) -> tuple[Claims, ClaimsBasis]:
    """(cluster, node) -> the node, the Sites and the GpuPools that select it; and what
    that follows from.

    A member Site covers every node of its cluster; a local Site the hub's nodes its
    selector matches; a pool the nodes of its Site its selector matches. `previous`: an
    earlier translation; where its Sites and GpuPools select as these do, its claims are
    kept for every node whose record is the same object (the cache replaces a node's
    record only when it changes): at 12,500 nodes, finding them all again was most of a
    translation.
    """
    sites_of: dict[str, list[tuple[str, Any]]] = {}
    for site_name, site in sorted(out.site_models.items()):
        sites_of.setdefault(out.site_cluster[site_name], []).append(
            (site_name, site.spec.nodes.local)
        )
    pools_of: dict[str, list[tuple[str, str, dict[str, str]]]] = {}
    for pool_name, pool in sorted(out.pool_models.items()):
        pools_of.setdefault(out.site_cluster[pool.spec.site], []).append(
            (pool_name, pool.spec.site, pool.spec.node_selector)
        )
    basis: ClaimsBasis = (
        tuple(
            (name, cluster, repr(local))
            for cluster, sites in sites_of.items()
            for name, local in sites
        ),
        tuple(
            (name, site, repr(sorted(selector.items())))
            for pools in pools_of.values()
            for name, site, selector in pools
        ),
    )
    kept = previous.claims if previous is not None and previous.claims_basis == basis else None
    claims: Claims = {}
    for cluster, sites in sites_of.items():
        state = view.clusters.get(cluster)
        if state is None:
            continue
        pools = pools_of.get(cluster, [])
        for node in state.nodes.values():
            where = (cluster, node.name)
            before = kept.get(where) if kept is not None else None
            if before is not None and before[0] is node:
                claims[where] = before
                continue
            owners = tuple(
                sorted(
                    name
                    for name, local in sites
                    if local is None or matches(local.node_selector, node.labels)
                )
            )
            if not owners:
                continue
            chosen = tuple(
                sorted(
                    name
                    for name, site, selector in pools
                    if site in owners and matches_map(selector, node.labels)
                )
            )
            claims[where] = (node, owners, chosen)
    return claims, basis


def _nodes(view: CacheView, out: Inputs, previous: Inputs | None = None) -> None:
    """The core's nodes, each with what other pods hold taken off; `previous`: an earlier
    translation, whose claims on unchanged nodes are kept (see `_claims`)."""
    placed = current_pod_keys(out)
    # Pods that hold resources outside gpufleet's accounting: other schedulers' pods and our
    # own pods of earlier epochs still shutting down.
    foreign: dict[tuple[str, str], list[PodRecord]] = {}
    for cluster, state in view.clusters.items():
        for pod in state.pods.values():
            if pod.node is None or pod.terminal:
                continue
            wk = pod.workload_key
            if pod.managed and wk is not None and (wk, pod.epoch) in placed and not pod.deleting:
                continue
            foreign.setdefault((cluster, pod.node), []).append(pod)
    claims, out.claims_basis = _claims(view, out, previous)
    out.claims = claims
    for (_, node_name), (_, sites, pools) in sorted(claims.items()):
        if len(sites) <= 1 and len(pools) <= 1:
            continue
        # Claimed twice: used by neither until the selectors are fixed; both owners say why.
        for kind, owners in (("Site", sites), ("GpuPool", pools)):
            if len(owners) > 1:
                for owner in owners:
                    rest = ", ".join(o for o in owners if o != owner)
                    out.overlaps.setdefault((kind, owner), []).append(
                        f"node {node_name} is also claimed by {kind} {rest}"
                    )
    for pool_name, pool in sorted(out.pool_models.items()):
        cluster = out.site_cluster[pool.spec.site]
        cluster_state = view.clusters.get(cluster)
        if cluster_state is None:
            continue
        keys = tuple(pool.spec.topology_keys or ())
        resource = pool.spec.resource_name
        for node in sorted(cluster_state.nodes.values(), key=lambda n: n.name):
            _, sites, pools = claims.get((cluster, node.name), (node, (), ()))
            if pools != (pool_name,) or len(sites) != 1:
                continue
            others = foreign.get((cluster, node.name), [])
            accel = node.accelerators(resource) - sum(
                p.accelerators.get(resource, 0) for p in others
            )
            cpu = node.cpu_millis - sum(p.cpu_millis for p in others)
            mem = node.memory_bytes - sum(p.memory_bytes for p in others)
            pods = node.pods - len(others)
            ready = node.ready and not node.unschedulable
            refused, until = cluster_state.refused.get(node.name, (None, 0.0))
            if until > view.taken_at:
                # Its kubelet refused one of our pods: it knows better than our records. The
                # resource it was out of counts as used up; any other refusal (affinity,
                # taints, admission) keeps new work off the node for a while.
                if refused == resource:
                    accel = 0
                elif refused == "cpu":
                    cpu = 0
                elif refused == "memory":
                    mem = 0
                elif refused == "pods":
                    pods = 0
                else:
                    ready = False
            out.nodes.append(
                core.Node(
                    name=core_node_name(cluster, node.name),
                    pool=pool_name,
                    accelerators=max(accel, 0),
                    cpu_millis=max(cpu, 0),
                    memory_bytes=max(mem, 0),
                    pods=max(pods, 0),
                    topology=tuple(node.labels.get(k, "") for k in keys),
                    ready=ready,
                )
            )
