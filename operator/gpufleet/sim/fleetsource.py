"""Where a simulated fleet comes from: a dev fleet file (YAML) or a trace node list (CSV)."""

from __future__ import annotations

from pathlib import Path

from gpufleet.sim import openb
from gpufleet.sim.fleet import SimFleet, SimNode, SimPool, SimSite


def from_dev_fleet(path: Path) -> SimFleet:
    """Each cluster is a site; each node group a pool; nodes without accelerators are left out."""
    from gpufleet.fleetfile import load_fleet  # YAML fleets only; trace-only runs never need it

    fleet = load_fleet(path)
    sites: list[SimSite] = []
    pools: list[SimPool] = []
    nodes: list[SimNode] = []
    for cluster in fleet.clusters:
        site = cluster.site
        sites.append(
            SimSite(
                site.name, site.jurisdiction, tuple(site.regions), frozenset(site.certifications)
            )
        )
        for group in cluster.node_groups:
            if group.accelerators_per_node == 0 or group.count == 0:
                continue
            pools.append(
                SimPool(group.name, len(sites) - 1, group.accelerator_class, group.resource_name)
            )
            nodes.extend(
                SimNode(
                    f"{group.name}-{i:05d}",
                    len(pools) - 1,
                    group.accelerators_per_node,
                    group.cpu_millis,
                    group.memory_bytes // 2**20,
                    group.pods,
                )
                for i in range(group.count)
            )
    return SimFleet(fleet.name, tuple(sites), tuple(pools), tuple(nodes))


def load_sim_fleet(path: Path) -> SimFleet:
    """A `.csv` is read as an openb node list, anything else as a dev fleet file."""
    if not path.exists():
        raise FileNotFoundError(f"fleet: {path} does not exist")
    if path.suffix.lower() == ".csv":
        return openb.read_nodes(path)
    return from_dev_fleet(path)
