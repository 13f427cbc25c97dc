"""Site: a place with GPUs (cluster-scoped)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from gpufleet.api import regions
from gpufleet.api.v1alpha1.common import (
    AcceleratorClass,
    ApiModel,
    Certification,
    Conditions,
    DnsLabel,
    Jurisdiction,
    LabelSelector,
    ListMap,
    ListSet,
    Message,
    ObjectName,
    Reason,
    RegionName,
    Resource,
    Rule,
    Timestamp,
)
from gpufleet.api.v1alpha1.crdinfo import CrdInfo, PrinterColumn

SiteType = Literal["OnPrem", "LocalZone", "AIFactory", "CloudRegion"]


class SecretKeyRef(ApiModel):
    """A key of a Secret in the operator's own namespace."""

    name: ObjectName
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class LocalNodes(ApiModel):
    """Nodes of the operator's own cluster, chosen by labels."""

    node_selector: LabelSelector


class MemberNodes(ApiModel):
    """Nodes of a member cluster reached through a kubeconfig Secret."""

    kubeconfig_secret_ref: SecretKeyRef


class SiteNodes(ApiModel):
    """Where the site's nodes live: exactly one of ``local`` or ``member``."""

    local: LocalNodes | None = None
    member: MemberNodes | None = None

    rules = (
        Rule(
            cel="has(self.local) != has(self.member)",
            message="spec.nodes must set exactly one of local or member",
            check=lambda n: (n.local is None) != (n.member is None),
        ),
    )


def _region_rule() -> Rule:
    # A site may only claim regions its jurisdiction belongs to: a Norwegian
    # site that says "EU" would let EU-only workloads run outside the EU.
    clauses = " && ".join(
        f"(!('{name}' in self.regions) || self.jurisdiction in [{', '.join(repr(c) for c in sorted(codes))}])"
        for name, codes in regions.REGIONS.items()
    )
    return Rule(
        cel=f"!has(self.regions) || ({clauses})",
        message="spec.regions must only name regions that contain spec.jurisdiction",
        check=lambda s: all(s.jurisdiction in regions.REGIONS[r] for r in s.regions or ()),
        field_path=".regions",
    )


class LossDeclaration(ApiModel):
    """Someone's word that the site's pods are stopped: `gpufleet site declare-lost`, or a
    configured external fence (a power controller, a cloud API) writing the same record.

    It covers every placement at the site admitted before `at`: those workloads with
    `onSiteLoss: Requeue` may then be placed elsewhere while the site cannot be reached.
    """

    by: Annotated[
        str,
        Field(min_length=1, max_length=512, description="Who declared it (user or fencer)."),
    ]
    at: Annotated[Timestamp, Field(description="When; placements admitted before it are covered.")]
    method: Annotated[
        Literal["Manual", "External"],
        Field(description="Manual: a person; External: an automated fence that powered it off."),
    ] = "Manual"
    reason: Annotated[str, Field(max_length=1024)] | None = None


class SiteSpec(ApiModel):
    """What a site is, where it is and how gpufleet reaches its nodes."""

    type: SiteType
    jurisdiction: Annotated[
        Jurisdiction,
        Field(description="ISO 3166-1 alpha-2 code of the country whose law governs the site."),
    ]
    regions: Annotated[
        list[RegionName] | None,
        ListSet(max_items=16),
        Field(description="Regions the site belongs to, e.g. EU, EEA."),
    ] = None
    certifications: Annotated[list[Certification], ListSet(max_items=32)] | None = None
    perimeter: Annotated[
        DnsLabel | None,
        Field(description="Security perimeter the site belongs to, e.g. a classified enclave."),
    ] = None
    power_budget_kw: Annotated[
        float | None,
        Field(ge=0, description="Power available for accelerators, in kW; unset means unlimited."),
    ] = None
    schedulable: Annotated[
        bool, Field(description="False cordons the site: running work stays, nothing new lands.")
    ] = True
    nodes: SiteNodes
    loss_declaration: Annotated[
        LossDeclaration | None,
        Field(
            description="Set by `gpufleet site declare-lost`: the site's pods are known stopped."
        ),
    ] = None

    rules = (_region_rule(),)


class Connection(ApiModel):
    state: Literal["Connected", "Disconnected", "Unknown"]
    last_heartbeat: Timestamp | None = None
    reason: Reason | None = None
    message: Message | None = None


class ClassCapacity(ApiModel):
    accelerator_class: AcceleratorClass
    capacity: Annotated[int, Field(ge=0)]
    allocated: Annotated[int, Field(ge=0)] = 0


class SiteStatus(ApiModel):
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    connection: Connection | None = None
    capacity: (
        Annotated[list[ClassCapacity], ListMap(("accelerator_class",), max_items=64)] | None
    ) = None
    power_in_use_kw: Annotated[float, Field(ge=0)] | None = None
    conditions: Conditions | None = None


class Site(Resource):
    """A place with GPUs: an on-prem data centre, a cloud local zone, an AI factory."""

    kind: Literal["Site"] = "Site"
    spec: SiteSpec
    status: SiteStatus | None = None

    rules = (
        Rule(
            cel="self.spec.jurisdiction == oldSelf.spec.jurisdiction",
            message="spec.jurisdiction is immutable once set",
            check_update=lambda old, new: old.spec.jurisdiction == new.spec.jurisdiction,
            field_path=".spec.jurisdiction",
        ),
    )

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="sites",
        short_names=("gsite",),
        scope="Cluster",
        columns=(
            PrinterColumn("Type", "string", ".spec.type"),
            PrinterColumn("Jurisdiction", "string", ".spec.jurisdiction"),
            PrinterColumn("Connection", "string", ".status.connection.state"),
            PrinterColumn("Schedulable", "boolean", ".spec.schedulable"),
            PrinterColumn("Power-kW", "number", ".status.powerInUseKw"),
            PrinterColumn("Budget-kW", "number", ".spec.powerBudgetKw", priority=1),
            PrinterColumn("Regions", "string", ".spec.regions", priority=1),
        ),
    )
