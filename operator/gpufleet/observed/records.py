"""Compact records of what the watches saw: only the fields scheduling needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpufleet.api.quantity import to_bytes as parse_memory_bytes
from gpufleet.api.quantity import to_millicores as parse_cpu_millis
from gpufleet.observed.podrequests import ACCELERATOR_RESOURCES, pod_requests

# Labels gpufleet puts on every pod it creates: who owns it and which dispatch it belongs to.
LABEL_MANAGED = "gpufleet.io/managed-by"
LABEL_WORKLOAD = "gpufleet.io/workload"
LABEL_WORKLOAD_NS = "gpufleet.io/workload-namespace"
LABEL_WORKLOAD_UID = "gpufleet.io/workload-uid"
LABEL_EPOCH = "gpufleet.io/epoch"
LABEL_REPLICA = "gpufleet.io/replica"
LABEL_ORIGIN = "gpufleet.io/origin"
MANAGED_BY = "gpufleet"

__all__ = ["ACCELERATOR_RESOURCES", "NodeRecord", "PodRecord"]
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
    # Whether any container of the pod was ever started (a kubelet that refuses a pod at
    # admission starts none).
    ran: bool = False

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

    @property
    def refused(self) -> bool:
        """Refused by its node's kubelet at admission (`OutOf<resource>`, `NodeAffinity`,
        a taint, any admission error): Failed with a reason before any container started.
        That is a failed placement, not a failure of the workload."""
        return self.phase == "Failed" and bool(self.reason) and not self.ran

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> PodRecord:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        # Counted as kube-scheduler counts: init and sidecar containers, overhead.
        counted = pod_requests(spec)
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            node=spec.get("nodeName"),
            phase=status.get("phase") or "Pending",
            labels=dict(meta.get("labels") or {}),
            deleting=meta.get("deletionTimestamp") is not None,
            cpu_millis=counted.cpu_millis,
            memory_bytes=counted.memory_bytes,
            accelerators=dict(counted.accelerators),
            reason=status.get("reason"),
            message=status.get("message"),
            ran=_ran(status),
        )


def _ran(status: dict[str, Any]) -> bool:
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        last = cs.get("lastState") or {}
        if "running" in state or (state.get("terminated") or {}).get("startedAt"):
            return True
        if last or int(cs.get("restartCount") or 0) > 0:
            return True
    return False
