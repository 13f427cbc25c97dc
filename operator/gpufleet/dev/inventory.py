"""What a running fleet actually holds, read back from each cluster's API server."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from gpufleet.dev import hollow
from gpufleet.dev.clusters import Cluster, RunningFleet, state_dir
from gpufleet.fleetfile import LABEL_ACCELERATOR, LABEL_SITE

ACCELERATOR_RESOURCES = ("nvidia.com/gpu", "aws.amazon.com/neuron", "amd.com/gpu", "google.com/tpu")


@dataclass
class ClusterInventory:
    cluster: str
    site: str
    server: str
    kubeconfig: str
    nodes: int = 0
    nodes_ready: int = 0
    accelerators: dict[str, int] = field(default_factory=dict)
    # Hollow kubelets: declared by the fleet file, their processes running now, and
    # their Nodes Ready (a node whose kubelet died stays Ready until the node monitor's
    # grace period has passed, so the processes are counted apart).
    hollow: int = 0
    hollow_running: int = 0
    hollow_ready: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cluster_inventory(cluster: Cluster) -> ClusterInventory:
    from kubernetes import client

    api_client = cluster.api_client()
    try:
        nodes = client.CoreV1Api(api_client).list_node().items
    finally:
        api_client.close()
    inv = ClusterInventory(
        cluster=cluster.name,
        site=cluster.site,
        server=cluster.server,
        kubeconfig=str(cluster.kubeconfig),
    )
    by_class: dict[str, int] = defaultdict(int)
    for node in nodes:
        labels = node.metadata.labels or {}
        inv.nodes += 1
        if any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or [])):
            inv.nodes_ready += 1
        if labels.get("type") == "hollow" and any(
            c.type == "Ready" and c.status == "True" for c in (node.status.conditions or [])
        ):
            inv.hollow_ready += 1
        allocatable = node.status.allocatable or {}
        for resource in ACCELERATOR_RESOURCES:
            if resource in allocatable:
                cls = labels.get(LABEL_ACCELERATOR, resource)
                by_class[cls] += int(allocatable[resource])
        inv.site = labels.get(LABEL_SITE, inv.site)
    inv.accelerators = dict(sorted(by_class.items()))
    inv.hollow = cluster.hollow
    if cluster.hollow:
        fleet_name = cluster.kubeconfig.parent.name
        mine = {
            n.name
            for n in hollow.recorded_nodes(state_dir(), fleet_name)
            if n.cluster == cluster.name
        }
        running = hollow.fleet_processes(state_dir(), fleet_name).values()
        inv.hollow_running = sum(1 for name in running if name in mine)
    return inv


def fleet_inventory(fleet: RunningFleet) -> list[ClusterInventory]:
    return [cluster_inventory(c) for c in fleet.clusters.values()]
