"""The pure scheduling core: a snapshot of arrays in, decisions out, no I/O.

Build the input from `gpufleet.core.model` dataclasses, then
`schedule(Snapshot.build(sites, pools, nodes, queues, workloads, now))`.
"""

from gpufleet.core.cycle import schedule
from gpufleet.core.model import (
    Admission,
    CycleResult,
    Eviction,
    ModelError,
    Node,
    Placement,
    Pool,
    Queue,
    Residency,
    Site,
    SiteVerdict,
    Workload,
    leaf_queue_violation,
    queues_with_children,
)
from gpufleet.core.snapshot import Snapshot

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
    "Snapshot",
    "Workload",
    "leaf_queue_violation",
    "queues_with_children",
    "schedule",
]
