"""The simulated fleet: sites, pools and nodes as flat numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SimSite:
    name: str
    jurisdiction: str
    regions: tuple[str, ...] = ()
    certifications: frozenset[str] = frozenset()

    def allows(self, residency: frozenset[str]) -> bool:
        """Residency lists jurisdictions or regions; empty means anywhere."""
        if not residency:
            return True
        return self.jurisdiction in residency or any(r in residency for r in self.regions)


@dataclass(frozen=True, slots=True)
class SimPool:
    name: str
    site: int
    accelerator_class: str
    resource: str = "nvidia.com/gpu"


UNLIMITED = 2**40
"""What a node whose CPU or memory is not known (0) offers: no limit."""


@dataclass(frozen=True, slots=True)
class SimNode:
    """`cpu_milli` and `memory_mib` 0: not known, so never a limit."""

    name: str
    pool: int
    gpus: int
    cpu_milli: int = 0
    memory_mib: int = 0
    pods: int = 110


@dataclass(frozen=True)
class SimFleet:
    """Immutable description of capacity; the engine keeps the free counts."""

    name: str
    sites: tuple[SimSite, ...]
    pools: tuple[SimPool, ...]
    nodes: tuple[SimNode, ...]
    _masks: dict[tuple[frozenset[str], frozenset[str]], BoolArray] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError(f"fleet {self.name!r}: nodes: at least one GPU node is required")
        for node in self.nodes:
            if node.gpus <= 0:
                raise ValueError(f"fleet {self.name!r}: node {node.name!r}: gpus must be > 0")
            if not 0 <= node.pool < len(self.pools):
                raise ValueError(f"fleet {self.name!r}: node {node.name!r}: unknown pool")
        for pool in self.pools:
            if not 0 <= pool.site < len(self.sites):
                raise ValueError(f"fleet {self.name!r}: pool {pool.name!r}: unknown site")

    @cached_property
    def capacity(self) -> IntArray:
        return np.array([n.gpus for n in self.nodes], dtype=np.int64)

    @cached_property
    def cpu_capacity(self) -> IntArray:
        """Millicores per node (`UNLIMITED` where the node does not say)."""
        return np.array([n.cpu_milli or UNLIMITED for n in self.nodes], dtype=np.int64)

    @cached_property
    def memory_capacity(self) -> IntArray:
        """MiB per node (`UNLIMITED` where the node does not say)."""
        return np.array([n.memory_mib or UNLIMITED for n in self.nodes], dtype=np.int64)

    @cached_property
    def node_pool(self) -> IntArray:
        return np.array([n.pool for n in self.nodes], dtype=np.int64)

    @cached_property
    def node_site(self) -> IntArray:
        pool_site = np.array([p.site for p in self.pools], dtype=np.int64)
        return pool_site[self.node_pool]

    @cached_property
    def total_gpus(self) -> int:
        return int(self.capacity.sum())

    def eligible(self, classes: frozenset[str], residency: frozenset[str]) -> BoolArray:
        """Nodes of an acceptable class in an allowed site (cached per combination)."""
        key = (classes, residency)
        mask = self._masks.get(key)
        if mask is None:
            pool_ok = np.array(
                [
                    (not classes or p.accelerator_class in classes)
                    and self.sites[p.site].allows(residency)
                    for p in self.pools
                ],
                dtype=np.bool_,
            )
            mask = pool_ok[self.node_pool]
            mask.setflags(write=False)
            self._masks[key] = mask
        return mask

    def capacity_by_class(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for node in self.nodes:
            cls = self.pools[node.pool].accelerator_class
            out[cls] = out.get(cls, 0) + node.gpus
        return out


def subsample(fleet: SimFleet, fraction: float) -> SimFleet:
    """Keep about `fraction` of each pool's nodes (at least one), evenly spread.

    The openb pod list asks about as many GPUs as its whole node list has, so no arrival
    process loads that fleet for long; replaying on a proportional slice of it does.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fleet fraction: must be in (0, 1] (got {fraction})")
    if fraction == 1:
        return fleet
    kept: list[SimNode] = []
    for pool in range(len(fleet.pools)):
        members = [n for n in fleet.nodes if n.pool == pool]
        if not members:
            continue
        keep = max(1, round(len(members) * fraction))
        picks = np.linspace(0, len(members) - 1, keep).round().astype(int)
        kept.extend(members[i] for i in sorted(set(picks.tolist())))
    return SimFleet(f"{fleet.name}x{fraction:g}", fleet.sites, fleet.pools, tuple(kept))
