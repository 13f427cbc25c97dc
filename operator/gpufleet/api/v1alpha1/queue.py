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
)
from gpufleet.api.v1alpha1.crdinfo import CrdInfo, PrinterColumn

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
    ] = 0
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
