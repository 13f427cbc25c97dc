"""Compact records of what the watches saw: only the fields scheduling needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpufleet.api.quantity import to_bytes as parse_memory_bytes
from gpufleet.api.quantity import to_millicores as parse_cpu_millis

# Labels gpufleet puts on every pod it creates: who owns it and which dispatch it belongs to.
LABEL_MANAGED = "gpufleet.io/managed-by"
LABEL_WORKLOAD = "gpufleet.io/workload"
LABEL_WORKLOAD_NS = "gpufleet.io/workload-namespace"
LABEL_WORKLOAD_UID = "gpufleet.io/workload-uid"
LABEL_EPOCH = "gpufleet.io/epoch"
LABEL_REPLICA = "gpufleet.io/replica"
LABEL_ORIGIN = "gpufleet.io/origin"
MANAGED_BY = "gpufleet"

ACCELERATOR_RESOURCES = ("nvidia.com/gpu", "aws.amazon.com/neuron", "amd.com/gpu", "google.com/tpu")
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def _quantity_int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    labels: dict[str, str]
    allocatable: dict[str, str]
    ready: bool
    unschedulable: bool

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> NodeRecord:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        return cls(
            name=meta["name"],
            labels=dict(meta.get("labels") or {}),
            allocatable=dict(status.get("allocatable") or {}),
            ready=any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            ),
            unschedulable=bool(spec.get("unschedulable")),
        )

    def accelerators(self, resource: str) -> int:
        return _quantity_int(self.allocatable.get(resource, 0))

    @property
    def cpu_millis(self) -> int:
        return parse_cpu_millis(self.allocatable.get("cpu", "0"))

    @property
    def memory_bytes(self) -> int:
        return parse_memory_bytes(self.allocatable.get("memory", "0"))

    @property
    def pods(self) -> int:
        return _quantity_int(self.allocatable.get("pods", "110"))


@dataclass(frozen=True, slots=True)
class PodRecord:
    namespace: str
    name: str
    uid: str
    node: str | None
    phase: str
    labels: dict[str, str]
    deleting: bool
    cpu_millis: int = 0
    memory_bytes: int = 0
    accelerators: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    message: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def managed(self) -> bool:
        return self.labels.get(LABEL_MANAGED) == MANAGED_BY

    @property
    def workload_key(self) -> str | None:
        name = self.labels.get(LABEL_WORKLOAD)
        ns = self.labels.get(LABEL_WORKLOAD_NS)
        return f"{ns}/{name}" if name and ns else None

    @property
    def epoch(self) -> int:
        return _quantity_int(self.labels.get(LABEL_EPOCH, "0"))

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> PodRecord:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        cpu = mem = 0
        accel: dict[str, int] = {}
        for container in spec.get("containers") or []:
            resources = container.get("resources") or {}
            requested = resources.get("requests") or {}
            limits = resources.get("limits") or {}
            cpu += parse_cpu_millis(requested.get("cpu", "0"))
            mem += parse_memory_bytes(requested.get("memory", "0"))
            for resource in ACCELERATOR_RESOURCES:
                # Extended resources may be given as limits only; requests then default to them.
                value = requested.get(resource, limits.get(resource))
                if value is not None:
                    accel[resource] = accel.get(resource, 0) + _quantity_int(value)
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            node=spec.get("nodeName"),
            phase=status.get("phase") or "Pending",
            labels=dict(meta.get("labels") or {}),
            deleting=meta.get("deletionTimestamp") is not None,
            cpu_millis=cpu,
            memory_bytes=mem,
            accelerators=accel,
            reason=status.get("reason"),
            message=status.get("message"),
        )
