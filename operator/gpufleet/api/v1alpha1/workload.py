"""Workload: a gang of identical replicas submitted to a Queue (namespaced)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from gpufleet.api.quantity import to_bytes, to_millicores
from gpufleet.api.v1alpha1.common import (
    AcceleratorClass,
    ApiModel,
    Certification,
    Conditions,
    Jurisdiction,
    LabelKey,
    LabelValue,
    ListMap,
    ListSet,
    Message,
    ObjectName,
    Quantity,
    Reason,
    RegionName,
    Resource,
    Rule,
    Timestamp,
)
from gpufleet.api.v1alpha1.crdinfo import CrdInfo, PrinterColumn
from gpufleet.api.v1alpha1.queue import Priority

Phase = Literal["Pending", "Admitted", "Running", "Succeeded", "Failed", "Preempted"]
MAX_REPLICAS = 4096


class Topology(ApiModel):
    """How close the replicas must or should be, by a pool's topology label key."""

    required: Annotated[
        LabelKey | None,
        Field(description="All replicas in one domain of this topology key, or none run."),
    ] = None
    preferred: Annotated[
        LabelKey | None,
        Field(description="Prefer one domain of this topology key when one can hold the gang."),
    ] = None


class Residency(ApiModel):
    """Where the workload's data may be processed. Unset lists do not restrict."""

    jurisdictions: Annotated[
        list[Jurisdiction] | None,
        ListSet(max_items=64),
        Field(description="Allowed jurisdictions (ISO 3166-1 alpha-2)."),
    ] = None
    regions: Annotated[
        list[RegionName] | None,
        ListSet(max_items=16),
        Field(description="Allowed regions, e.g. EU, EEA."),
    ] = None
    certifications: Annotated[
        list[Certification] | None,
        ListSet(max_items=16),
        Field(description="Certifications a site must hold, all of them."),
    ] = None


class TemplateMetadata(ApiModel):
    labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=64)] | None = None
    annotations: Annotated[dict[LabelKey, Message], Field(max_length=64)] | None = None


class PodTemplate(ApiModel):
    """The pod every replica runs; the pod spec is passed through unchanged."""

    metadata: TemplateMetadata | None = None
    spec: Annotated[
        dict[str, Any],
        Field(
            description="A core/v1 PodSpec; gpufleet adds the accelerator requests and placement.",
            json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        ),
    ]


class WorkloadSpec(ApiModel):
    """What to run, how much of it, and where it may run."""

    queue: Annotated[ObjectName, Field(description="The Queue to submit to.")]
    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] = 1
    min_replicas: Annotated[
        int | None,
        Field(
            ge=1,
            le=MAX_REPLICAS,
            description="Fewest replicas worth starting (all-or-nothing); unset means replicas.",
        ),
    ] = None
    accelerators_per_replica: Annotated[int, Field(ge=1, le=1024)] = 1
    accelerator_classes: Annotated[
        list[AcceleratorClass],
        ListSet(min_items=1, max_items=16),
        Field(description="Acceptable accelerator classes."),
    ]
    cpu: Annotated[Quantity | None, Field(description="CPU per replica, e.g. 8 or 7500m.")] = None
    memory: Annotated[Quantity | None, Field(description="Memory per replica, e.g. 512Gi.")] = None
    priority: Priority = 0
    preemptible: bool = True
    topology: Topology | None = None
    residency: Residency | None = None
    site_preferences: Annotated[
        list[ObjectName] | None,
        ListSet(max_items=16),
        Field(description="Preferred Sites, most preferred first."),
    ] = None
    max_runtime_seconds: Annotated[int | None, Field(ge=1)] = None
    on_site_loss: Annotated[
        Literal["Wait", "Requeue"],
        Field(
            description="When the workload's site is cut off: wait for it, or place it again"
            " elsewhere once the site's pods are known to be stopped."
        ),
    ] = "Requeue"
    requeue_on_preemption: bool = True
    checkpoint_interval_seconds: Annotated[
        int | None,
        Field(
            ge=1,
            description="Seconds between the workload's checkpoints: an eviction loses only"
            " the work since the last one, so the scheduler prefers such victims.",
        ),
    ] = None
    preemption_grace_period_seconds: Annotated[
        int | None,
        Field(
            ge=0,
            le=86_400,
            description="Seconds this workload's pods get to stop when it is preempted or"
            " reclaimed; unset takes its Queue's (spec.preemption.gracePeriodSeconds).",
        ),
    ] = None
    template: PodTemplate

    rules = (
        Rule(
            cel="!has(self.minReplicas) || self.minReplicas <= self.replicas",
            message="spec.minReplicas must be <= spec.replicas",
            check=lambda s: s.min_replicas is None or s.min_replicas <= s.replicas,
            field_path=".minReplicas",
        ),
    )

    @property
    def gang_size(self) -> int:
        """The fewest replicas that may start together."""
        return self.min_replicas if self.min_replicas is not None else self.replicas

    @property
    def cpu_millicores(self) -> int:
        return 0 if self.cpu is None else to_millicores(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return 0 if self.memory is None else to_bytes(self.memory)

    @property
    def total_accelerators(self) -> int:
        return self.replicas * self.accelerators_per_replica


class ReplicaPlacement(ApiModel):
    index: Annotated[int, Field(ge=0, le=MAX_REPLICAS)]
    node: ObjectName


class Placement(ApiModel):
    """Where the workload was admitted. Never changed in place; cleared on requeue."""

    site: ObjectName
    pool: ObjectName
    epoch: Annotated[int, Field(ge=1, description="Dispatch epoch; pods carry it as a label.")]
    replicas: Annotated[list[ReplicaPlacement], ListMap(("index",), max_items=MAX_REPLICAS)]
    admitted_at: Timestamp


class Verdict(ApiModel):
    """Why the workload is not (yet) placed at a site."""

    site: Annotated[ObjectName | None, Field(description="Unset for fleet-wide reasons.")] = None
    rule: Annotated[Reason, Field(description="The rule that stopped it, e.g. Residency.")]
    message: Message
    nearest_change: Annotated[
        Message | None, Field(description="The smallest change that would let it run there.")
    ] = None


class WorkloadStatus(ApiModel):
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    phase: Phase | None = None
    placement: Placement | None = None
    epoch: Annotated[
        int | None,
        Field(ge=0, description="Highest dispatch epoch so far; never decreases."),
    ] = None
    verdicts: Annotated[list[Verdict], Field(max_length=256)] | None = None
    queue_position: Annotated[int, Field(ge=0)] | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    eviction_times: Annotated[
        list[Timestamp] | None,
        Field(max_length=16, description="The latest evictions, for the queue's eviction cap."),
    ] = None
    conditions: Conditions | None = None


_ADMITTED_CEL = (
    "has(oldSelf.status) && ((has(oldSelf.status.phase) && oldSelf.status.phase != 'Pending')"
    " || has(oldSelf.status.placement))"
)


def _admitted(workload: Workload) -> bool:
    status = workload.status
    return status is not None and (
        (status.phase is not None and status.phase != "Pending") or status.placement is not None
    )


def _placement(workload: Workload) -> Placement | None:
    return None if workload.status is None else workload.status.placement


def _epoch(workload: Workload) -> int | None:
    return None if workload.status is None else workload.status.epoch


def _epoch_kept(old: int | None, new: int | None) -> bool:
    return old is None or (new is not None and new >= old)


class Workload(Resource):
    """A gang of identical replicas that runs whole, at one site, or not at all."""

    kind: Literal["Workload"] = "Workload"
    spec: WorkloadSpec
    status: WorkloadStatus | None = None

    rules = (
        Rule(
            cel=f"!({_ADMITTED_CEL}) || self.spec.queue == oldSelf.spec.queue",
            message="spec.queue is immutable once the workload is admitted",
            check_update=lambda old, new: not _admitted(old) or old.spec.queue == new.spec.queue,
            field_path=".spec.queue",
        ),
        Rule(
            cel=f"!({_ADMITTED_CEL}) || (has(self.spec.residency) == has(oldSelf.spec.residency)"
            " && (!has(self.spec.residency) || self.spec.residency == oldSelf.spec.residency))",
            message="spec.residency is immutable once the workload is admitted",
            check_update=lambda old, new: (
                not _admitted(old) or old.spec.residency == new.spec.residency
            ),
            field_path=".spec.residency",
        ),
        Rule(
            cel="!has(oldSelf.status) || !has(oldSelf.status.placement) || !has(self.status)"
            " || !has(self.status.placement) || self.status.placement == oldSelf.status.placement",
            message="status.placement is immutable once set; clear it to requeue the workload",
            check_update=lambda old, new: (
                _placement(old) is None
                or _placement(new) is None
                or _placement(old) == _placement(new)
            ),
            field_path=".status.placement",
        ),
        Rule(
            cel="!has(oldSelf.status) || !has(oldSelf.status.epoch) || (has(self.status)"
            " && has(self.status.epoch) && self.status.epoch >= oldSelf.status.epoch)",
            message="status.epoch must never decrease",
            check_update=lambda old, new: _epoch_kept(_epoch(old), _epoch(new)),
            field_path=".status.epoch",
        ),
    )

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="workloads",
        short_names=("gwl",),
        scope="Namespaced",
        columns=(
            PrinterColumn("Queue", "string", ".spec.queue"),
            PrinterColumn("Replicas", "integer", ".spec.replicas"),
            PrinterColumn(
                "Per-Replica", "integer", ".spec.acceleratorsPerReplica", "Accelerators per replica"
            ),
            PrinterColumn("Phase", "string", ".status.phase"),
            PrinterColumn("Site", "string", ".status.placement.site"),
            PrinterColumn("Pool", "string", ".status.placement.pool", priority=1),
            PrinterColumn("Position", "integer", ".status.queuePosition", priority=1),
        ),
    )
