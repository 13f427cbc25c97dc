"""The gpufleet.io/v1alpha1 API: Site, GpuPool, Queue (cluster-scoped) and Workload."""

from gpufleet.api.v1alpha1.common import (
    API_VERSION,
    CATEGORY,
    GROUP,
    VERSION,
    Condition,
    LabelSelector,
    ObjectMeta,
    Resource,
    Rule,
    TransitionError,
    check_update,
)
from gpufleet.api.v1alpha1.gpupool import GpuPool, GpuPoolSpec, GpuPoolStatus
from gpufleet.api.v1alpha1.kinds import Kind, kinds_of
from gpufleet.api.v1alpha1.queue import (
    Preemption,
    Queue,
    QueueResource,
    QueueResourceStatus,
    QueueSpec,
    QueueStatus,
    QueueTotals,
)
from gpufleet.api.v1alpha1.site import (
    ClassCapacity,
    Connection,
    LocalNodes,
    LossDeclaration,
    MemberNodes,
    SecretKeyRef,
    Site,
    SiteNodes,
    SiteSpec,
    SiteStatus,
)
from gpufleet.api.v1alpha1.workload import (
    Placement,
    PodTemplate,
    ReplicaPlacement,
    Residency,
    Topology,
    Verdict,
    Workload,
    WorkloadSpec,
    WorkloadStatus,
)

KINDS: tuple[type[Resource], ...] = (Site, GpuPool, Queue, Workload)
"""Every top-level kind, in the order their CRDs are written."""

KIND_INFO: dict[str, Kind] = kinds_of(KINDS)
"""Kind name → plural, scope and cache key, for the clients."""

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "KINDS",
    "KIND_INFO",
    "VERSION",
    "ClassCapacity",
    "Condition",
    "Connection",
    "GpuPool",
    "GpuPoolSpec",
    "GpuPoolStatus",
    "Kind",
    "LabelSelector",
    "LocalNodes",
    "LossDeclaration",
    "MemberNodes",
    "ObjectMeta",
    "Placement",
    "PodTemplate",
    "Preemption",
    "Queue",
    "QueueResource",
    "QueueResourceStatus",
    "QueueSpec",
    "QueueStatus",
    "QueueTotals",
    "ReplicaPlacement",
    "Residency",
    "Resource",
    "Rule",
    "SecretKeyRef",
    "Site",
    "SiteNodes",
    "SiteSpec",
    "SiteStatus",
    "Topology",
    "TransitionError",
    "Verdict",
    "Workload",
    "WorkloadSpec",
    "WorkloadStatus",
    "check_update",
]
