"""Capacity against forecast demand: when it runs out, when to order, what is short.

Installed capacity comes from the history (the latest installed accelerators of each
site and class) unless a capacity file says otherwise; committed capacity is what is
ordered with a delivery date. `date_needed` is the first forecast week whose busiest day
(daily mean demand) exceeds the capacity in place that day; `order_by` is that date
minus the lead time. Shortfalls are the largest daily excess over the horizon, turned
into nodes, racks and kilowatts with the SKU table (data/skus.yaml, with sources).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

FloatArray = npt.NDArray[np.float64]
WEEK = 7


@dataclass(frozen=True, slots=True)
class Sku:
    name: str
    accelerator_class: str
    accelerators_per_node: int
    node_kw: float
    nodes_per_rack: int
    sources: tuple[str, ...]
    estimate: bool = False


def load_skus(path: Path | None = None) -> dict[str, Sku]:
    """The SKU table by accelerator class: the packaged one unless `path` is given."""
    if path is None:
        text = resources.files("gpufleet.forecast").joinpath("data/skus.yaml").read_text()
    else:
        text = path.read_text()
    raw = yaml.safe_load(text)
    out: dict[str, Sku] = {}
    for entry in raw.get("skus", []):
        sku = Sku(
            str(entry["name"]),
            str(entry["accelerator_class"]),
            int(entry["accelerators_per_node"]),
            float(entry["node_kw"]),
            int(entry["nodes_per_rack"]),
            tuple(str(s) for s in entry.get("sources", [])),
            bool(entry.get("estimate", False)),
        )
        if sku.accelerators_per_node < 1 or sku.node_kw <= 0 or sku.nodes_per_rack < 1:
            raise ValueError(f"SKU {sku.name!r}: sizes and power must be positive")
        out[sku.accelerator_class] = sku
    return out


@dataclass(frozen=True, slots=True)
class Commitment:
    accelerators: float
    date: np.datetime64


@dataclass(frozen=True)
class SiteCapacity:
    installed: float | None = None
    committed: tuple[Commitment, ...] = ()


def load_capacity(path: Path, skus: dict[str, Sku]) -> dict[tuple[str, str], SiteCapacity]:
    """A capacity file (YAML)::

    capacity:
      - site: factory-osl
        accelerator_class: nvidia-h200
        installed: 256          # optional: overrides the history's
        committed:
          - nodes: 8            # or accelerators: 64
            date: 2025-09-01    # delivered and usable from this day
    """
    raw: Any = yaml.safe_load(path.read_text()) or {}
    out: dict[tuple[str, str], SiteCapacity] = {}
    for i, entry in enumerate(raw.get("capacity", [])):
        where = f"{path}: capacity[{i}]"
        try:
            site, cls = str(entry["site"]), str(entry["accelerator_class"])
            commits = []
            for c in entry.get("committed", []):
                if "accelerators" in c:
                    amount = float(c["accelerators"])
                else:
                    if cls not in skus:
                        raise ValueError(f"no SKU for {cls!r} to count nodes in; give accelerators")
                    amount = float(c["nodes"]) * skus[cls].accelerators_per_node
                commits.append(Commitment(amount, np.datetime64(str(c["date"]), "D")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        installed = entry.get("installed")
        out[(site, cls)] = SiteCapacity(
            None if installed is None else float(installed), tuple(commits)
        )
    return out


@dataclass(frozen=True)
class Shortfall:
    accelerators: float
    nodes: int | None
    racks: int | None
    kw: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "accelerators": round(self.accelerators, 1),
            "nodes": self.nodes,
            "racks": self.racks,
            "kw": None if self.kw is None else round(self.kw, 1),
        }


@dataclass(frozen=True)
class Plan:
    site: str
    accelerator_class: str
    installed: float
    committed: float  # installed plus everything committed within the horizon
    date_needed: str | None  # first week whose busiest day exceeds capacity (p50)
    date_needed_p95: str | None  # the same against the 90 % band's upper edge
    order_by: str | None
    order_by_p95: str | None
    already_short: bool
    shortfall: Shortfall  # at p50
    shortfall_p95: Shortfall
    sku: str | None
    notes: list[str] = field(default_factory=list)


def capacity_path(
    days: npt.NDArray[np.datetime64], installed: float, committed: Sequence[Commitment]
) -> FloatArray:
    cap = np.full(days.size, installed, dtype=np.float64)
    for c in committed:
        cap[days >= c.date] += c.accelerators
    return cap


def first_exceeding_week(
    days: npt.NDArray[np.datetime64], demand: FloatArray, cap: FloatArray
) -> np.datetime64 | None:
    over = demand > cap + 1e-9
    if not over.any():
        return None
    first = int(np.argmax(over))
    week = first // WEEK
    return np.datetime64(days[week * WEEK])


def shortfall(excess: float, sku: Sku | None) -> Shortfall:
    excess = max(0.0, excess)
    if sku is None:
        return Shortfall(excess, None, None, None)
    nodes = math.ceil(excess / sku.accelerators_per_node - 1e-9) if excess > 0 else 0
    return Shortfall(excess, nodes, -(-nodes // sku.nodes_per_rack), nodes * sku.node_kw)


def plan(
    site: str,
    cls: str,
    days: npt.NDArray[np.datetime64],
    p50: FloatArray,
    p95: FloatArray,
    installed: float,
    committed: Sequence[Commitment],
    lead_days: int,
    sku: Sku | None,
    today: np.datetime64,
) -> Plan:
    cap = capacity_path(days, installed, committed)
    lead = np.timedelta64(lead_days, "D")
    needed = first_exceeding_week(days, p50, cap)
    needed95 = first_exceeding_week(days, p95, cap)
    notes = []
    if sku is None:
        notes.append(f"no SKU for {cls}: shortfall in accelerators only")
    elif sku.estimate:
        notes.append(f"{sku.name}: power is an estimate")
    order = None if needed is None else needed - lead
    order95 = None if needed95 is None else needed95 - lead
    late = order is not None and order < today
    if late:
        notes.append("order_by has passed: capacity arrives after demand exceeds it")
    return Plan(
        site=site,
        accelerator_class=cls,
        installed=installed,
        committed=float(installed + sum(c.accelerators for c in committed if c.date <= days[-1])),
        date_needed=None if needed is None else str(needed),
        date_needed_p95=None if needed95 is None else str(needed95),
        order_by=None if order is None else str(order),
        order_by_p95=None if order95 is None else str(order95),
        already_short=bool(p50[:WEEK].max() > cap[:WEEK].min() + 1e-9),
        shortfall=shortfall(float((p50 - cap).max()), sku),
        shortfall_p95=shortfall(float((p95 - cap).max()), sku),
        sku=None if sku is None else sku.name,
        notes=notes,
    )
