"""The core's input and output: plain frozen dataclasses.

The state layer and the simulator build these; `Snapshot.build` (in
`gpufleet.core.snapshot`, re-exported as `gpufleet.core.Snapshot`) turns them
into arrays and `gpufleet.core.schedule` returns a `CycleResult`.

Every constructor validates its fields and raises `ModelError` naming the
object, the field and the rule, so bad input never reaches the cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "Admission",
    "CycleResult",
    "Eviction",
    "ModelError",
    "Node",
    "Placement",
    "Pool",
    "Queue",
    "Residency",
    "Site",
    "SiteVerdict",
    "Workload",
    "leaf_queue_violation",
    "queues_with_children",
]


class ModelError(ValueError):
    """Invalid core input; the message names the object, the field and the rule."""

    def __init__(self, kind: str, name: str, field_name: str, rule: str) -> None:
        self.kind = kind
        self.name = name
        self.field = field_name
        self.rule = rule
        super().__init__(f"{kind} {name!r}: field {field_name!r} {rule}")


def _require(ok: bool, kind: str, name: str, field_name: str, rule: str) -> None:
    if not ok:
        raise ModelError(kind, name, field_name, rule)


def _non_negative(kind: str, name: str, field_name: str, value: float) -> None:
    _require(
        math.isfinite(value) and value >= 0,
        kind,
        name,
        field_name,
        f"must be a finite number >= 0, got {value!r}",
    )


@dataclass(frozen=True, slots=True)
class Site:
    """A place with accelerators. `regions` are groupings such as "EU"."""

    name: str
    jurisdiction: str
    regions: tuple[str, ...] = ()
    certifications: frozenset[str] = frozenset()
    schedulable: bool = True
    connected: bool = True
    power_budget_watts: float | None = None
    perimeter: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.name), "Site", self.name, "name", "must not be empty")
        _require(bool(self.jurisdiction), "Site", self.name, "jurisdiction", "must not be empty")
        if self.power_budget_watts is not None:
            _non_negative("Site", self.name, "power_budget_watts", self.power_budget_watts)


@dataclass(frozen=True, slots=True)
class Pool:
    """A node group of one site with one accelerator class.

    `topology_keys` go from coarse to fine, e.g. ("rack", "nvlink-domain").
    """

    name: str
    site: str
    accelerator_class: str
    watts_per_accelerator: float = 0.0
    cost_per_accelerator_hour: float = 0.0
    topology_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(bool(self.name), "Pool", self.name, "name", "must not be empty")
        _require(bool(self.site), "Pool", self.name, "site", "must not be empty")
        _require(
            bool(self.accelerator_class),
            "Pool",
            self.name,
            "accelerator_class",
            "must not be empty",
        )
        _non_negative("Pool", self.name, "watts_per_accelerator", self.watts_per_accelerator)
        _non_negative(
            "Pool", self.name, "cost_per_accelerator_hour", self.cost_per_accelerator_hour
        )
        _require(
            len(set(self.topology_keys)) == len(self.topology_keys),
            "Pool",
            self.name,
            "topology_keys",
            f"must not repeat a key, got {self.topology_keys!r}",
        )


@dataclass(frozen=True, slots=True)
class Node:
    """A node's total capacity; the snapshot subtracts what running workloads use.

    `topology` holds the node's values for its pool's `topology_keys`, in order.
    """

    name: str
    pool: str
    accelerators: int
    cpu_millis: int
    memory_bytes: int
    pods: int
    topology: tuple[str, ...] = ()
    ready: bool = True

    def __post_init__(self) -> None:
        _require(bool(self.name), "Node", self.name, "name", "must not be empty")
        for field_name in ("accelerators", "cpu_millis", "memory_bytes", "pods"):
            value = getattr(self, field_name)
            _require(
                isinstance(value, int) and value >= 0,
                "Node",
                self.name,
                field_name,
                f"must be an integer >= 0, got {value!r}",
            )


@dataclass(frozen=True, slots=True)
class Queue:
    """A unit of quota and fairness. Maps are keyed by accelerator class.

    `limit` absent for a class means no limit; `over_quota_weight` defaults to
    1.0. Only leaf queues hold workloads. `allowed_sites` and
    `allowed_jurisdictions` of None mean "no restriction"; an ancestor's
    restriction applies to all its descendants.
    """

    name: str
    parent: str | None = None
    deserved: Mapping[str, int] = field(default_factory=dict)
    limit: Mapping[str, int] = field(default_factory=dict)
    over_quota_weight: Mapping[str, float] = field(default_factory=dict)
    priority: int = 0
    reclaimable: bool = True
    min_runtime_seconds: float = 0.0
    allowed_sites: frozenset[str] | None = None
    allowed_jurisdictions: frozenset[str] | None = None
    # Fairness over time (gpufleet.core.fairness). State the caller keeps: decayed
    # accelerator-seconds used and deserved by fair share, per class, and when the queue
    # last became starved. Policy: how much the present allocation weighs against that
    # history (inf: history ignored), how much waiting counts (inf: age ignored), how
    # long a workload waits before it goes ahead of the fairness order (inf: never), the
    # reclaim hysteresis and the eviction cap.
    usage: Mapping[str, float] = field(default_factory=dict)
    fair_usage: Mapping[str, float] = field(default_factory=dict)
    present_weight_seconds: float = math.inf
    wait_credit_seconds: float = math.inf
    max_wait_seconds: float = math.inf
    starved_since: float | None = None
    reclaim_delay_seconds: float = 0.0
    reclaim_margin: float = 0.0
    max_evictions: int | None = None
    eviction_window_seconds: float = math.inf

    def __post_init__(self) -> None:
        _require(bool(self.name), "Queue", self.name, "name", "must not be empty")
        for map_name in ("usage", "fair_usage"):
            for cls, amount in getattr(self, map_name).items():
                _non_negative("Queue", self.name, f"{map_name}[{cls}]", amount)
        _require(
            self.present_weight_seconds > 0,
            "Queue",
            self.name,
            "present_weight_seconds",
            f"must be > 0 (inf: history ignored), got {self.present_weight_seconds!r}",
        )
        _require(
            self.wait_credit_seconds > 0,
            "Queue",
            self.name,
            "wait_credit_seconds",
            f"must be > 0 (inf: age ignored), got {self.wait_credit_seconds!r}",
        )
        _require(
            self.max_wait_seconds > 0,
            "Queue",
            self.name,
            "max_wait_seconds",
            f"must be > 0 (inf: no bound), got {self.max_wait_seconds!r}",
        )
        _non_negative("Queue", self.name, "reclaim_delay_seconds", self.reclaim_delay_seconds)
        _require(
            0 <= self.reclaim_margin <= 1,
            "Queue",
            self.name,
            "reclaim_margin",
            f"must be between 0 and 1, got {self.reclaim_margin!r}",
        )
        _require(
            self.max_evictions is None
            or (isinstance(self.max_evictions, int) and self.max_evictions >= 0),
            "Queue",
            self.name,
            "max_evictions",
            f"must be an integer >= 0 or None, got {self.max_evictions!r}",
        )
        _require(
            self.eviction_window_seconds > 0,
            "Queue",
            self.name,
            "eviction_window_seconds",
            f"must be > 0, got {self.eviction_window_seconds!r}",
        )
        _require(self.parent != self.name, "Queue", self.name, "parent", "must not be itself")
        for map_name in ("deserved", "limit"):
            for cls, value in getattr(self, map_name).items():
                _require(
                    isinstance(value, int) and value >= 0,
                    "Queue",
                    self.name,
                    f"{map_name}[{cls}]",
                    f"must be an integer >= 0, got {value!r}",
                )
        for cls, value in self.limit.items():
            _require(
                self.deserved.get(cls, 0) <= value,
                "Queue",
                self.name,
                f"deserved[{cls}]",
                f"must be <= limit[{cls}] ({value}), got {self.deserved.get(cls, 0)}",
            )
        for cls, weight in self.over_quota_weight.items():
            _non_negative("Queue", self.name, f"over_quota_weight[{cls}]", weight)
        _non_negative("Queue", self.name, "min_runtime_seconds", self.min_runtime_seconds)

    def weight(self, cls: str) -> float:
        return float(self.over_quota_weight.get(cls, 1.0))


def queues_with_children(queues: Iterable[Queue]) -> frozenset[str]:
    """The names of the queues that some queue names as its parent."""
    return frozenset(q.parent for q in queues if q.parent is not None)


def leaf_queue_violation(
    workload: str, queue: str, with_children: frozenset[str]
) -> ModelError | None:
    """The leaf-queue rule: workloads are submitted to leaf queues only.

    A queue with children only passes its share on to them; work queued on it
    would compete with its own children. `with_children` is from `queues_with_children`.
    """
    if queue in with_children:
        return ModelError(
            "Workload", workload, "queue", f"must name a leaf queue, {queue!r} has children"
        )
    return None


@dataclass(frozen=True, slots=True)
class Residency:
    """Where a workload's data may go.

    Empty `jurisdictions` and `regions` mean no residency limit; if either is
    set, a site is allowed when its jurisdiction is in `jurisdictions` or one
    of its regions is in `regions`. Every certification must be held by the site.
    """

    jurisdictions: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    certifications: frozenset[str] = frozenset()

    @property
    def limited(self) -> bool:
        return bool(self.jurisdictions or self.regions)

    def allows_location(self, site: Site) -> bool:
        if not self.limited:
            return True
        return site.jurisdiction in self.jurisdictions or any(
            region in self.regions for region in site.regions
        )

    def missing_certifications(self, site: Site) -> frozenset[str]:
        return self.certifications - site.certifications


NO_RESIDENCY = Residency()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a running workload is: one node per placed replica (repeats allowed)."""

    site: str
    pool: str
    nodes: tuple[str, ...]
    started_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Workload:
    """A gang of identical replicas. With a `placement` it runs, without it is pending.

    A gang is placed with `replicas` replicas when possible, else with the
    largest count >= `min_replicas` that fits (see docs/scheduling.md).
    `accelerator_classes` are acceptable classes in order of preference.
    """

    key: str
    queue: str
    replicas: int
    min_replicas: int
    accelerators_per_replica: int
    accelerator_classes: tuple[str, ...]
    cpu_millis_per_replica: int = 0
    memory_bytes_per_replica: int = 0
    priority: int = 0
    preemptible: bool = True
    created_at: float = 0.0
    residency: Residency = NO_RESIDENCY
    required_topology: str | None = None
    preferred_topology: str | None = None
    site_preferences: tuple[str, ...] = ()
    placement: Placement | None = None
    # Seconds between the workload's checkpoints: an eviction loses only the work since
    # the last one. None: it restarts from the beginning.
    checkpoint_interval_seconds: float | None = None
    # When the workload was evicted before (state the caller keeps), for the eviction cap.
    eviction_times: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        kind, name = "Workload", self.key
        if self.checkpoint_interval_seconds is not None:
            _require(
                math.isfinite(self.checkpoint_interval_seconds)
                and self.checkpoint_interval_seconds > 0,
                kind,
                name,
                "checkpoint_interval_seconds",
                f"must be a finite number > 0, got {self.checkpoint_interval_seconds!r}",
            )
        _require(bool(self.key), kind, name, "key", "must not be empty")
        _require(bool(self.queue), kind, name, "queue", "must not be empty")
        _require(
            isinstance(self.replicas, int) and self.replicas >= 1,
            kind,
            name,
            "replicas",
            f"must be an integer >= 1, got {self.replicas!r}",
        )
        _require(
            isinstance(self.min_replicas, int) and 1 <= self.min_replicas <= self.replicas,
            kind,
            name,
            "min_replicas",
            f"must be between 1 and replicas ({self.replicas}), got {self.min_replicas!r}",
        )
        _require(
            isinstance(self.accelerators_per_replica, int) and self.accelerators_per_replica >= 1,
            kind,
            name,
            "accelerators_per_replica",
            f"must be an integer >= 1, got {self.accelerators_per_replica!r}",
        )
        _require(
            len(self.accelerator_classes) >= 1,
            kind,
            name,
            "accelerator_classes",
            "must name at least one accelerator class",
        )
        for field_name in ("cpu_millis_per_replica", "memory_bytes_per_replica"):
            value = getattr(self, field_name)
            _require(
                isinstance(value, int) and value >= 0,
                kind,
                name,
                field_name,
                f"must be an integer >= 0, got {value!r}",
            )
        _non_negative(kind, name, "created_at", self.created_at)
        if self.placement is not None:
            placed = len(self.placement.nodes)
            _require(
                self.min_replicas <= placed <= self.replicas,
                kind,
                name,
                "placement.nodes",
                f"must name one node per replica ({self.min_replicas}..{self.replicas}),"
                f" got {placed}",
            )

    @property
    def running(self) -> bool:
        return self.placement is not None


# ----------------------------------------------------------------------------------
# Decisions


@dataclass(frozen=True, slots=True)
class Admission:
    """Run `workload` on `nodes` (one per replica) of `pool` at `site`."""

    workload: str
    site: str
    pool: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Eviction:
    """Stop `workload`; `preemptor` is the pending workload it makes room for."""

    workload: str
    reason: str  # "Reclaimed" (another queue's deserved share) or "Preempted" (priority)
    preemptor: str


@dataclass(frozen=True, slots=True)
class SiteVerdict:
    """Why a pending workload does not run at `site`, and the nearest change that would help.

    `rule` is CamelCase, e.g. ResidencyDenied, CertificationMissing, NotEntitled,
    SiteDisconnected, SiteUnschedulable, AcceleratorClassUnavailable,
    QuotaLimitReached, PowerBudgetExceeded, TopologyUnsatisfiable,
    InsufficientAccelerators, InsufficientCPU, InsufficientMemory, InsufficientPods,
    Fits (room appeared after this workload's turn; retried next cycle).
    """

    site: str
    rule: str
    message: str
    nearest_change: str | None = None


@dataclass(frozen=True)
class CycleResult:
    """Decisions of one cycle.

    `verdicts` maps every workload left pending to one verdict per site; it is
    a read-only mapping that may compute entries on first access (it is fixed
    at the end of the cycle, so the result is the same whenever it is read).
    `queue_order` lists pending workload keys in the order they were
    considered; `positions` gives each pending workload's 1-based position in
    its own queue after the cycle.
    """

    admissions: list[Admission]
    evictions: list[Eviction]
    verdicts: Mapping[str, list[SiteVerdict]]
    fair_shares: dict[str, dict[str, float]]
    queue_order: list[str]
    positions: dict[str, int]
    allocated: dict[str, dict[str, int]] = field(default_factory=dict)
    # Leaf queues left below their share by their reclaim margin with work pending: the
    # caller starts (or keeps) their reclaim clock, `Queue.starved_since`.
    starved: frozenset[str] = frozenset()
