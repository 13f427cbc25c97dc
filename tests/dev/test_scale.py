"""One local cluster holds a thousand fake GPU nodes."""

from __future__ import annotations

import pytest

from gpufleet.dev.clusters import RunningFleet
from gpufleet.dev.inventory import cluster_inventory

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_a_cluster_holds_a_thousand_gpu_nodes(big_cluster: RunningFleet) -> None:
    cluster = next(iter(big_cluster.clusters.values()))
    inv = cluster_inventory(cluster)
    assert inv.nodes == inv.nodes_ready == 1000
    assert inv.accelerators == {"nvidia-h100": 8000}
