"""GpuPool: the nodes of one site with one accelerator class (cluster-scoped)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from gpufleet.api.v1alpha1.common import (
    EXTENDED_RESOURCE_PATTERN,
    AcceleratorClass,
    ApiModel,
    Conditions,
    LabelKey,
    LabelValue,
    ListSet,
    ObjectName,
    Resource,
    Rule,
)
from gpufleet.api.v1alpha1.crdinfo import CrdInfo, PrinterColumn


class GpuPoolSpec(ApiModel):
    """A node group of one site with one accelerator class."""

    site: Annotated[ObjectName, Field(description="Name of the Site the nodes belong to.")]
    accelerator_class: AcceleratorClass
    resource_name: Annotated[
        str,
        Field(
            min_length=3,
            max_length=317,
            pattern=EXTENDED_RESOURCE_PATTERN,
            description="Extended resource the nodes advertise, e.g. nvidia.com/gpu.",
        ),
    ]
    node_selector: Annotated[
        dict[LabelKey, LabelValue],
        Field(
            max_length=32,
            description="Labels every node of the pool carries (within the site's nodes).",
        ),
    ]
    topology_keys: Annotated[
        list[LabelKey] | None,
        ListSet(max_items=8),
        Field(
            description="Node label keys of topology domains, coarse to fine"
            " (e.g. rack, then NVLink domain).",
        ),
    ] = None
    watts_per_accelerator: Annotated[
        float | None, Field(ge=0, description="Power drawn by one busy accelerator, in W.")
    ] = None
    cost_per_accelerator_hour: Annotated[
        float | None, Field(ge=0, description="Cost of one accelerator for one hour.")
    ] = None


class GpuPoolStatus(ApiModel):
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    nodes_ready: Annotated[int, Field(ge=0)] | None = None
    nodes_total: Annotated[int, Field(ge=0)] | None = None
    capacity: Annotated[int, Field(ge=0)] | None = None
    allocated: Annotated[int, Field(ge=0)] | None = None
    free: Annotated[int, Field(ge=0)] | None = None
    fragmentation: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description="Share of free accelerators on nodes too full to take a whole"
            " replica of the pool's most common size (0 = none wasted).",
        ),
    ] = None
    conditions: Conditions | None = None

    rules = (
        Rule(
            cel="!has(self.nodesReady) || !has(self.nodesTotal) || self.nodesReady <= self.nodesTotal",
            message="status.nodesReady must be <= status.nodesTotal",
            check=lambda s: (
                s.nodes_ready is None or s.nodes_total is None or s.nodes_ready <= s.nodes_total
            ),
            field_path=".nodesReady",
        ),
    )


class GpuPool(Resource):
    """A group of nodes of one site with one accelerator class."""

    kind: Literal["GpuPool"] = "GpuPool"
    spec: GpuPoolSpec
    status: GpuPoolStatus | None = None

    rules = (
        Rule(
            # Moving a pool to another site would move its GPUs across jurisdictions.
            cel="self.spec.site == oldSelf.spec.site",
            message="spec.site is immutable",
            check_update=lambda old, new: old.spec.site == new.spec.site,
            field_path=".spec.site",
        ),
    )

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="gpupools",
        short_names=("gpool",),
        scope="Cluster",
        columns=(
            PrinterColumn("Site", "string", ".spec.site"),
            PrinterColumn("Accelerator", "string", ".spec.acceleratorClass"),
            PrinterColumn("Capacity", "integer", ".status.capacity"),
            PrinterColumn("Allocated", "integer", ".status.allocated"),
            PrinterColumn("Free", "integer", ".status.free"),
            PrinterColumn("Ready", "integer", ".status.nodesReady", "Nodes ready"),
            PrinterColumn("Nodes", "integer", ".status.nodesTotal", priority=1),
            PrinterColumn("Fragmentation", "number", ".status.fragmentation", priority=1),
        ),
    )
