"""Node objects for a fleet file's node groups, with the labels a real GPU node carries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gpufleet.fleetfile import (
    LABEL_ACCELERATOR,
    LABEL_GPU_COUNT,
    LABEL_GPU_MEMORY,
    LABEL_GPU_PRESENT,
    LABEL_GPU_PRODUCT,
    LABEL_INSTANCE_TYPE,
    LABEL_NVLINK,
    LABEL_POOL,
    LABEL_RACK,
    LABEL_REGION,
    LABEL_SITE,
    LABEL_ZONE,
    ClusterSpec,
    NodeGroup,
)

# The three-site fleet that `gpufleet dev up`, the demo and the cluster tests start.
DEFAULT_FLEET = Path(__file__).with_name("fleets") / "dev.yaml"
# The same three sites on hollow kubelets (real kubelets with a fake runtime), small.
HOLLOW_FLEET = Path(__file__).with_name("fleets") / "hollow.yaml"


def node_name(group: NodeGroup, index: int) -> str:
    return f"{group.name}-{index:05d}"


def iter_node_manifests(cluster: ClusterSpec) -> Iterator[dict[str, object]]:
    """Node objects for KWOK, with the labels a real GPU node would carry.

    Hollow groups have none: their kubelets register their nodes themselves.
    """
    for group in cluster.node_groups:
        if group.kubelet != "kwok":
            continue
        for i in range(group.count):
            yield node_manifest(cluster, group, i)


def node_labels(cluster: ClusterSpec, group: NodeGroup, index: int) -> dict[str, str]:
    """The labels of a group's node: the same for KWOK and hollow nodes but `type`.

    `type` names the tier (`kwok` or `hollow`), so that each can be listed apart.
    """
    labels: dict[str, str] = {
        "type": group.kubelet,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node_name(group, index),
        LABEL_SITE: cluster.site.name,
        LABEL_POOL: group.name,
        LABEL_ACCELERATOR: group.accelerator_class,
        LABEL_REGION: cluster.site.jurisdiction.lower(),
    }
    if group.zone:
        labels[LABEL_ZONE] = group.zone
    if group.instance_type:
        labels[LABEL_INSTANCE_TYPE] = group.instance_type
    if group.topology.nodes_per_rack:
        labels[LABEL_RACK] = f"{group.name}-rack-{index // group.topology.nodes_per_rack:03d}"
    if group.topology.nodes_per_nvlink_domain:
        labels[LABEL_NVLINK] = (
            f"{group.name}-nvl-{index // group.topology.nodes_per_nvlink_domain:04d}"
        )
    if group.resource_name == "nvidia.com/gpu":
        labels[LABEL_GPU_PRESENT] = "true"
        labels[LABEL_GPU_COUNT] = str(group.accelerators_per_node)
        if group.gpu_product:
            labels[LABEL_GPU_PRODUCT] = group.gpu_product
        if group.gpu_memory_mib:
            labels[LABEL_GPU_MEMORY] = str(group.gpu_memory_mib)
    labels.update(group.labels)
    return labels


def node_manifest(cluster: ClusterSpec, group: NodeGroup, index: int) -> dict[str, object]:
    labels = node_labels(cluster, group, index)
    resources = {
        "cpu": str(group.cpu),
        "memory": str(group.memory),
        "pods": str(group.pods),
        group.resource_name: str(group.accelerators_per_node),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name(group, index),
            "labels": labels,
            # KWOK only takes over nodes that carry this annotation.
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "fake",
                "kernelVersion": "fake",
                "osImage": "fake",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
            "phase": "Running",
        },
    }
