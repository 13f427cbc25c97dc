"""The fleet-file model: clusters, the site each one hosts, and node groups of accelerators.

A fleet file describes a fleet's clusters and nodes; the dev tooling brings it
up as local clusters with simulated nodes and the simulator replays traces on it. It is
validated strictly, so a typo is reported with the path of the field instead of
silently producing a different fleet.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?)(?P<suffix>m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")
_SUFFIX = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}

# Labels that NVIDIA GPU feature discovery and the cloud providers put on nodes,
# so that selectors written for real clusters also match the fake ones.
LABEL_SITE = "gpufleet.io/site"
LABEL_POOL = "gpufleet.io/pool"
LABEL_ACCELERATOR = "gpufleet.io/accelerator-class"
LABEL_RACK = "topology.gpufleet.io/rack"
LABEL_NVLINK = "topology.gpufleet.io/nvlink-domain"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
LABEL_GPU_MEMORY = "nvidia.com/gpu.memory"
LABEL_GPU_PRESENT = "nvidia.com/gpu.present"

# What a hollow kubelet (kubemark) reports, whatever it is asked: its fake cAdvisor
# has one machine shape. A hollow group states these (or leaves cpu/memory out) so
# that the fleet file never promises a node more than its kubelet will admit.
HOLLOW_CPU = "1"
HOLLOW_MEMORY = "3840Mi"


def parse_quantity(value: str | int, *, field: str) -> int:
    """Parse a Kubernetes quantity into an integer of base units (rounded up)."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{field} must be non-negative, got {value}")
        return value
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise ValueError(
            f"{field} must be a Kubernetes quantity such as '96', '500m' or '1Ti', got {value!r}"
        )
    number = float(match["num"])
    suffix = match["suffix"]
    if suffix == "m":
        return int(-(-number // 1000))
    return int(number * _SUFFIX[suffix])


def parse_cpu_millis(value: str | int, *, field: str) -> int:
    """CPU in millicores; '500m' and '0.5' are the same."""
    if isinstance(value, int):
        return parse_quantity(value, field=field) * 1000
    text = value.strip()
    if text.endswith("m"):
        return parse_quantity(text[:-1], field=field)
    match = _QUANTITY.match(text)
    if match is None or match["suffix"] is not None:
        raise ValueError(f"{field} must be a CPU quantity such as '96' or '500m', got {value!r}")
    return int(float(match["num"]) * 1000)


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class SiteInfo(_Model):
    """What the cluster is, as a gpufleet Site."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
    type: Literal["OnPrem", "LocalZone", "AIFactory", "CloudRegion"]
    jurisdiction: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    regions: tuple[str, ...] = ()
    certifications: tuple[str, ...] = ()
    perimeter: str | None = None
    power_budget_kw: Annotated[float, Field(ge=0)] | None = None


class Topology(_Model):
    """How nodes of a group are cabled: consecutive nodes share a rack / NVLink domain."""

    nodes_per_rack: Annotated[int, Field(ge=1)] | None = None
    nodes_per_nvlink_domain: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _nvlink_within_rack(self) -> Topology:
        rack, nvl = self.nodes_per_rack, self.nodes_per_nvlink_domain
        if rack is not None and nvl is not None and rack % nvl != 0:
            raise ValueError(
                "topology.nodesPerRack must be a multiple of topology.nodesPerNvlinkDomain "
                f"(an NVLink domain never spans racks), got {rack} and {nvl}"
            )
        return self


class NodeGroup(_Model):
    """Identical simulated nodes of one pool.

    `kubelet` says what plays the nodes' kubelet: `kwok` (the default; KWOK fakes
    node and pod status, any size, thousands per machine, never refuses a pod) or
    `hollow` (one kubemark process per node: the real kubelet with a fake container
    runtime, which admits pods against its allocatable like a real node; about
    100 MB each, so tens per machine).
    """

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]
    kubelet: Literal["kwok", "hollow"] = "kwok"
    count: Annotated[int, Field(ge=0, le=200_000)]
    accelerator_class: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
    resource_name: Annotated[str, Field(pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$")] = "nvidia.com/gpu"
    accelerators_per_node: Annotated[int, Field(ge=0, le=256)]
    cpu: str | int = "96"
    memory: str | int = "1Ti"
    pods: Annotated[int, Field(ge=1, le=10_000)] = 110
    gpu_product: str | None = None
    gpu_memory_mib: Annotated[int, Field(ge=0)] | None = None
    instance_type: str | None = None
    zone: str | None = None
    topology: Topology = Topology()
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _hollow_machine_shape(cls, data: object) -> object:
        # A hollow group that leaves cpu/memory out gets the shape its kubelet reports.
        if isinstance(data, dict) and data.get("kubelet") == "hollow":
            data = dict(data)
            data.setdefault("cpu", HOLLOW_CPU)
            data.setdefault("memory", HOLLOW_MEMORY)
        return data

    @model_validator(mode="after")
    def _hollow_cpu_memory(self) -> NodeGroup:
        if self.kubelet != "hollow":
            return self
        shape = (
            parse_cpu_millis(HOLLOW_CPU, field="cpu"),
            parse_quantity(HOLLOW_MEMORY, field="memory"),
        )
        if (self.cpu_millis, self.memory_bytes) != shape:
            raise ValueError(
                f"a hollow node group (kubelet: hollow) has cpu {HOLLOW_CPU!r} and memory "
                f"{HOLLOW_MEMORY!r}: that is what kubemark's fake cAdvisor reports whatever it is "
                f"asked; got cpu {self.cpu!r} and memory {self.memory!r}. Leave cpu and memory out, "
                "or use kubelet: kwok for other machine shapes"
            )
        return self

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str | int) -> str | int:
        parse_cpu_millis(value, field="cpu")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | int) -> str | int:
        parse_quantity(value, field="memory")
        return value

    @property
    def cpu_millis(self) -> int:
        return parse_cpu_millis(self.cpu, field="cpu")

    @property
    def memory_bytes(self) -> int:
        return parse_quantity(self.memory, field="memory")


class ClusterSpec(_Model):
    """One local Kubernetes control plane hosting one site."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]
    hub: bool = False
    api_server_port: Annotated[int, Field(ge=1024, le=65535)] | None = None
    site: SiteInfo
    node_groups: list[NodeGroup] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_groups(self) -> ClusterSpec:
        names = [g.name for g in self.node_groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"nodeGroups[].name must be unique within a cluster; repeated: {dupes}"
            )
        return self


class Fleet(_Model):
    """A set of local clusters; exactly one is the hub where gpufleet runs."""

    api_version: Literal["gpufleet.io/v1alpha1"] = "gpufleet.io/v1alpha1"
    kind: Literal["DevFleet"] = "DevFleet"
    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=20)]
    clusters: Annotated[list[ClusterSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _one_hub_unique_names(self) -> Fleet:
        hubs = [c.name for c in self.clusters if c.hub]
        if len(hubs) != 1:
            raise ValueError(
                f"clusters[].hub must be true for exactly one cluster, found {len(hubs)}: {hubs}"
            )
        for what, names in (
            ("clusters[].name", [c.name for c in self.clusters]),
            ("clusters[].site.name", [c.site.name for c in self.clusters]),
            (
                "clusters[].nodeGroups[].name",
                [g.name for c in self.clusters for g in c.node_groups],
            ),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} must be unique across the fleet; repeated: {dupes}")
        return self

    @property
    def hub(self) -> ClusterSpec:
        return next(c for c in self.clusters if c.hub)

    def cluster(self, name: str) -> ClusterSpec:
        for c in self.clusters:
            if c.name == name:
                return c
        raise KeyError(name)


class FleetFileError(ValueError):
    """A fleet file that cannot be read; the message names the file and the field."""


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet file. Raises FleetFileError naming each bad field."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise FleetFileError(f"{p}: cannot read the fleet file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise FleetFileError(f"{p}: not valid YAML: {exc}") from exc
    return parse_fleet(raw, source=str(p))


def parse_fleet(raw: object, *, source: str = "<fleet>") -> Fleet:
    if not isinstance(raw, dict):
        raise FleetFileError(f"{source}: a fleet file must be a mapping with 'name' and 'clusters'")
    try:
        return Fleet.model_validate(raw)
    except ValidationError as exc:
        problems = [f"  {_field_path(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise FleetFileError(f"{source}: invalid fleet file:\n" + "\n".join(problems)) from exc
