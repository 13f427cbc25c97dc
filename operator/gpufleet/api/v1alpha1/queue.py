"""Queue: the unit of quota and fairness, arranged in a tree (cluster-scoped)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from gpufleet.api.v1alpha1.common import (
    AcceleratorClass,
    ApiModel,
    Conditions,
    DnsLabel,
    Jurisdiction,
    LabelSelector,
    ListMap,
    ListSet,
    ObjectName,
    RegionName,
    Resource,
    Rule,
    Timestamp,
)
from gpufleet.api.v1alpha1.crdinfo import CrdInfo, PrinterColumn
from gpufleet.core import fairness

# The range of user-defined PriorityClass values.
Priority = Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
Count = Annotated[int, Field(ge=0, le=100_000_000)]
Weight = Annotated[float, Field(ge=0, le=1_000_000)]


class QueueResource(ApiModel):
    """The queue's share of one accelerator class, in accelerators."""

    accelerator_class: AcceleratorClass
    deserved: Annotated[Count, Field(description="Guaranteed accelerators.")] = 0
    limit: Annotated[
        Count | None, Field(description="Hard cap on accelerators; unset means no cap.")
    ] = None
    over_quota_weight: Annotated[
        Weight, Field(description="Share of what other queues leave idle, relative to siblings.")
    ] = 1.0

    rules = (
        Rule(
            cel="!has(self.limit) || self.deserved <= self.limit",
            message="spec.resources[].deserved must be <= spec.resources[].limit",
            check=lambda r: r.limit is None or r.deserved <= r.limit,
            field_path=".deserved",
        ),
    )


class Preemption(ApiModel):
    reclaimable: Annotated[
        bool,
        Field(
            description="Whether work above the queue's deserved share may be evicted"
            " to give other queues their deserved share."
        ),
    ] = True
    min_runtime_seconds: Annotated[
        Count, Field(description="Seconds a workload runs before it may be preempted.")
    ] = int(fairness.MIN_RUNTIME_SECONDS)
    max_evictions: Annotated[
        Count,
        Field(description="Evictions of one workload allowed per evictionWindowSeconds."),
    ] = fairness.MAX_EVICTIONS
    eviction_window_seconds: Annotated[
        int, Field(ge=1, le=31_536_000, description="The window of maxEvictions.")
    ] = int(fairness.EVICTION_WINDOW_SECONDS)
    reclaim_delay_seconds: Annotated[
        Count,
        Field(
            description="Seconds the queue stays below its share by reclaimMargin before it"
            " reclaims (hysteresis)."
        ),
    ] = int(fairness.RECLAIM_DELAY_SECONDS)
    reclaim_margin: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            description="How far below its share, as a fraction of its deserved share, the"
            " queue must be to reclaim; summed over every accelerator class the waiting"
            " workload accepts.",
        ),
    ] = fairness.RECLAIM_MARGIN
    grace_period_seconds: Annotated[
        int | None,
        Field(
            ge=0,
            le=86_400,
            description="Seconds a preempted or reclaimed workload's pods get to stop (their"
            " deletion's grace period); unset inherits the parent's, 30 at the root.",
        ),
    ] = None
    within_queue: Annotated[
        Literal["LowerPriority", "Never"],
        Field(description="Whether higher-priority workloads may preempt lower ones in the queue."),
    ] = "LowerPriority"


class Fairness(ApiModel):
    """Fairness over time: decayed usage against decayed fair share."""

    usage_half_life_seconds: Annotated[
        int, Field(ge=1, le=31_536_000, description="Half-life of the queue's decayed usage.")
    ] = int(fairness.USAGE_HALF_LIFE_SECONDS)
    present_weight_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=31_536_000,
            description="Seconds of history the current allocation weighs when queues are ranked.",
        ),
    ] = int(fairness.PRESENT_WEIGHT_SECONDS)
    wait_credit_seconds: Annotated[
        int | None,
        Field(
            ge=1,
            le=31_536_000,
            description="Waiting this long counts as one fair share less when queues are"
            " ranked; null (the default): age is ignored, maxWaitSeconds bounds the wait.",
        ),
    ] = None
    max_wait_seconds: Annotated[
        int | None,
        Field(
            ge=1,
            le=31_536_000,
            description="After waiting this long (since its creation or its last"
            " eviction), the queue's next workload goes ahead of the fairness order"
            " (oldest first), and once started it is reclaimed only for a workload that"
            " has waited its own bound; null: no bound.",
        ),
    ] = int(fairness.MAX_WAIT_SECONDS)


class QueueSpec(ApiModel):
    """Quota, fairness, who may submit and where the queue's work may run."""

    parent: Annotated[
        ObjectName | None, Field(description="Parent queue; unset for a root of the tree.")
    ] = None
    resources: Annotated[
        list[QueueResource] | None, ListMap(("accelerator_class",), max_items=32)
    ] = None
    namespaces: Annotated[
        list[DnsLabel] | None,
        ListSet(max_items=256),
        Field(description="Namespaces whose Workloads may use this queue."),
    ] = None
    namespace_selector: Annotated[
        LabelSelector | None,
        Field(
            description="Namespaces, by label, whose Workloads may use this queue;"
            " {} allows all. With neither this nor namespaces, no namespace may submit."
        ),
    ] = None
    allowed_sites: Annotated[
        list[ObjectName] | None,
        ListSet(max_items=64),
        Field(description="Sites the queue may use; unset inherits the parent's."),
    ] = None
    allowed_jurisdictions: Annotated[
        list[Jurisdiction] | None,
        ListSet(max_items=64),
        Field(
            description="Jurisdictions the queue may use; unset inherits the parent's.",
        ),
    ] = None
    allowed_regions: Annotated[
        list[RegionName] | None,
        ListSet(max_items=16),
        Field(description="Regions the queue may use; unset inherits the parent's."),
    ] = None
    priority: Priority = 0
    preemption: Preemption | None = None
    fairness: Fairness | None = None
    pod_security: Annotated[
        Literal["restricted", "baseline", "privileged"] | None,
        Field(
            description="Pod Security Standard every Workload template of this queue must meet,"
            " and that namespaces gpufleet creates in members enforce. Unset inherits the"
            " parent's (baseline at a root); a child may be stricter than its parent, never"
            " looser (a looser one is refused and its parent's level applies)."
        ),
    ] = None
    service_accounts: Annotated[
        list[ObjectName] | None,
        ListSet(max_items=64),
        Field(
            description="Service accounts a template may name in spec.serviceAccountName;"
            " unset or empty allows only the namespace's default."
        ),
    ] = None
    automount_service_account_token: Annotated[
        bool,
        Field(
            description="Whether pods may carry a service account token; when false gpufleet sets"
            " automountServiceAccountToken: false on every pod and refuses templates asking"
            " for a token."
        ),
    ] = False

    rules = (
        Rule(
            cel="!has(self.namespaces) || !has(self.namespaceSelector)",
            message="spec.namespaces and spec.namespaceSelector are mutually exclusive",
            check=lambda s: s.namespaces is None or s.namespace_selector is None,
        ),
    )


class QueueResourceStatus(ApiModel):
    accelerator_class: AcceleratorClass
    allocated: Count = 0
    fair_share: Weight = 0.0
    pending: Annotated[Count, Field(description="Accelerators wanted by pending workloads.")] = 0
    usage: Annotated[
        float, Field(ge=0, description="Decayed accelerator-seconds used (fairness over time).")
    ] = 0.0
    fair_usage: Annotated[
        float, Field(ge=0, description="Decayed accelerator-seconds of the queue's fair share.")
    ] = 0.0


class QueueTotals(ApiModel):
    """Sums over accelerator classes, for `kubectl get` at a glance."""

    deserved: Count = 0
    allocated: Count = 0
    fair_share: Weight = 0.0
    pending: Count = 0


class QueueStatus(ApiModel):
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    resources: Annotated[
        list[QueueResourceStatus] | None, ListMap(("accelerator_class",), max_items=32)
    ] = None
    totals: QueueTotals | None = None
    admitted_workloads: Count | None = None
    pending_workloads: Count | None = None
    usage_updated_at: Annotated[
        Timestamp | None, Field(description="When resources[].usage was last brought up to date.")
    ] = None
    starved_since: Annotated[
        Timestamp | None,
        Field(description="Since when the queue has been below its share by its margin."),
    ] = None
    conditions: Conditions | None = None


class Queue(Resource):
    """A team or project: guaranteed quota, a cap, and a weight for idle capacity."""

    kind: Literal["Queue"] = "Queue"
    spec: QueueSpec
    status: QueueStatus | None = None

    rules = (
        Rule(
            cel="!has(self.spec.parent) || self.spec.parent != self.metadata.name",
            message="spec.parent must not name the queue itself",
            check=lambda q: q.spec.parent is None or q.spec.parent != q.metadata.name,
            field_path=".spec.parent",
        ),
    )

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="queues",
        short_names=("gqueue", "gq"),
        scope="Cluster",
        columns=(
            PrinterColumn("Parent", "string", ".spec.parent"),
            PrinterColumn("Deserved", "integer", ".status.totals.deserved", "Accelerators"),
            PrinterColumn("Allocated", "integer", ".status.totals.allocated", "Accelerators"),
            PrinterColumn("Fair-Share", "number", ".status.totals.fairShare", "Accelerators"),
            PrinterColumn("Pending", "integer", ".status.totals.pending", "Accelerators"),
            PrinterColumn("Admitted", "integer", ".status.admittedWorkloads", priority=1),
            PrinterColumn("Waiting", "integer", ".status.pendingWorkloads", priority=1),
        ),
    )
