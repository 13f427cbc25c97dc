"""Fleet files are validated strictly and errors name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from gpufleet.dev.nodes import DEFAULT_FLEET, iter_node_manifests
from gpufleet.fleetfile import (
    LABEL_GPU_PRODUCT,
    LABEL_NVLINK,
    LABEL_RACK,
    FleetFileError,
    load_fleet,
    parse_fleet,
)


@pytest.fixture
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_FLEET.read_text())
    return data


def test_default_fleet_has_three_sites_in_different_jurisdictions() -> None:
    fleet = load_fleet(DEFAULT_FLEET)
    assert len(fleet.clusters) == 3
    assert len({c.site.jurisdiction for c in fleet.clusters}) == 3
    types = {c.site.type for c in fleet.clusters}
    assert {"OnPrem", "LocalZone", "AIFactory"} <= types
    classes = {g.accelerator_class for c in fleet.clusters for g in c.node_groups}
    assert {"nvidia-h100", "nvidia-h200", "aws-trainium2"} <= classes


def test_norway_is_read_as_a_country_not_a_boolean() -> None:
    fleet = load_fleet(DEFAULT_FLEET)
    assert "NO" in {c.site.jurisdiction for c in fleet.clusters}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["clusters"][0]["site"].__setitem__("jurisdiction", "Germany"),
            "clusters[0].site.jurisdiction",
        ),
        (
            lambda d: d["clusters"][0]["nodeGroups"][0].__setitem__("count", -1),
            "clusters[0].nodeGroups[0].count",
        ),
        (
            lambda d: d["clusters"][0]["nodeGroups"][0].__setitem__("memory", "lots"),
            "clusters[0].nodeGroups[0].memory",
        ),
        (
            lambda d: d["clusters"][0]["nodeGroups"][0].__setitem__("acceleratorClass", "H100!"),
            "clusters[0].nodeGroups[0].acceleratorClass",
        ),
        (
            lambda d: d["clusters"][0]["nodeGroups"][0].__setitem__("gpuz", 8),
            "clusters[0].nodeGroups[0].gpuz",
        ),
        (lambda d: d["clusters"][1].__setitem__("hub", True), "clusters[].hub"),
        (
            lambda d: d["clusters"][1].__setitem__("name", d["clusters"][0]["name"]),
            "clusters[].name",
        ),
        (
            lambda d: d["clusters"][0]["nodeGroups"][0]["topology"].__setitem__(
                "nodesPerNvlinkDomain", 3
            ),
            "topology.nodesPerRack",
        ),
    ],
)
def test_malformed_fleet_is_rejected_naming_the_field(
    raw: dict[str, Any], mutate: Any, field: str
) -> None:
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(FleetFileError) as err:
        parse_fleet(bad)
    assert field in str(err.value)


def test_nodes_carry_gpu_feature_discovery_and_topology_labels() -> None:
    fleet = load_fleet(DEFAULT_FLEET)
    factory = fleet.cluster("factory-osl")
    nodes = list(iter_node_manifests(factory))
    assert len(nodes) == sum(g.count for g in factory.node_groups)
    h200 = [n for n in nodes if n["metadata"]["labels"]["gpufleet.io/pool"] == "osl-h200"]  # type: ignore[index]
    labels = h200[0]["metadata"]["labels"]  # type: ignore[index]
    assert labels[LABEL_GPU_PRODUCT] == "NVIDIA-H200"
    racks = {n["metadata"]["labels"][LABEL_RACK] for n in h200}  # type: ignore[index]
    assert len(racks) == len(h200) // 16
    assert len({n["metadata"]["labels"][LABEL_NVLINK] for n in h200}) == len(h200)  # type: ignore[index]
    trn = next(n for n in nodes if n["metadata"]["labels"]["gpufleet.io/pool"] == "osl-trn2")  # type: ignore[index]
    assert trn["status"]["allocatable"]["aws.amazon.com/neuron"] == "16"  # type: ignore[index]
