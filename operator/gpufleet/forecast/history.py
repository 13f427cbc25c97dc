"""Hourly history of a fleet: what each queue held and waited for, per site and class.

The CSV export has one row per hour and (site, accelerator class, queue):

| column | meaning |
| --- | --- |
| `timestamp` | start of the hour, ISO 8601 UTC (`2025-01-06T13:00:00Z`) |
| `site`, `accelerator_class`, `queue` | the series' labels |
| `allocated` | mean accelerators held by the queue's placed pods over the hour |
| `pending` | mean accelerators asked by the queue's pending workloads over the hour |
| `capacity` | installed accelerators of the site and class (the same on every queue's row) |
| `admission_wait_seconds` | mean wait of the hour's admissions; empty when none |
| `admitted` | optional: accelerators of the workloads admitted in the hour |
| `demand_true` | optional, simulations only: demand if capacity were unlimited |

Empty cells are missing values. The forecast target is demand, estimated from these
(`gpufleet.forecast.series.offered_load`): allocation alone is capped by capacity, so a
model of it learns the capacity.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
COLUMNS = (
    "timestamp",
    "site",
    "accelerator_class",
    "queue",
    "allocated",
    "pending",
    "capacity",
    "admission_wait_seconds",
)
TRUTH = "demand_true"
ADMITTED = "admitted"
OPTIONAL = (ADMITTED, TRUTH)
HOUR = np.timedelta64(3600, "s")


class Key(NamedTuple):
    site: str
    accelerator_class: str
    queue: str


class HistoryError(ValueError):
    """A history could not be read; the message names the file, line and column."""


@dataclass(frozen=True)
class History:
    """Arrays indexed [key, hour] from `start` (UTC, whole hours); NaN = not observed."""

    start: np.datetime64
    keys: tuple[Key, ...]
    allocated: FloatArray
    pending: FloatArray
    capacity: FloatArray
    admission_wait: FloatArray
    demand_true: FloatArray | None = None
    # Accelerators admitted per hour (a counter's hourly increase); None when not exported.
    admitted: FloatArray | None = None

    def __post_init__(self) -> None:
        shape = (len(self.keys), self.hours)
        for name in ("allocated", "pending", "capacity", "admission_wait"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"history: {name} has shape {getattr(self, name).shape}")
        for name in OPTIONAL:
            if (
                getattr(self, _FIELD[name]) is not None
                and getattr(self, _FIELD[name]).shape != shape
            ):
                raise ValueError(f"history: {name} has the wrong shape")

    @property
    def hours(self) -> int:
        return int(self.allocated.shape[1])

    @property
    def backlog(self) -> FloatArray:
        """Allocated plus pending accelerators: demand only while no backlog builds up."""
        return self.allocated + self.pending

    def timestamps(self) -> npt.NDArray[np.datetime64]:
        return self.start + np.arange(self.hours) * HOUR


_FIELD = {ADMITTED: "admitted", TRUTH: "demand_true"}


def write_csv(history: History, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    times = [_iso(t) for t in history.timestamps()]
    extra = [
        (name, arr) for name in OPTIONAL if (arr := getattr(history, _FIELD[name])) is not None
    ]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS + tuple(name for name, _ in extra))
        for hour, stamp in enumerate(times):
            for k, key in enumerate(history.keys):
                row = [
                    stamp,
                    *key,
                    _num(history.allocated[k, hour]),
                    _num(history.pending[k, hour]),
                    _num(history.capacity[k, hour]),
                    _num(history.admission_wait[k, hour]),
                ]
                row.extend(_num(arr[k, hour]) for _, arr in extra)
                writer.writerow(row)


def _iso(t: np.datetime64) -> str:
    return str(t.astype("datetime64[s]")) + "Z"


def _num(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.4f}".rstrip("0").rstrip(".")


def parse_time(text: str) -> np.datetime64:
    """ISO 8601 in UTC ('Z' or '+00:00' or no zone), or Unix seconds."""
    raw = text.strip()
    try:
        return np.datetime64(int(float(raw)), "s")
    except ValueError:
        pass
    for suffix in ("Z", "+00:00"):
        raw = raw.removesuffix(suffix)
    return np.datetime64(raw, "s")


def read_csv(path: Path) -> History:
    if not path.exists():
        raise HistoryError(f"{path}: no such file")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in fields]
        if missing:
            raise HistoryError(f"{path}:1: header: missing column(s) {', '.join(missing)}")
        present = tuple(name for name in OPTIONAL if name in fields)
        rows: list[tuple[np.datetime64, Key, list[float]]] = []
        problems: list[str] = []
        values = [*COLUMNS[4:], *present]
        for row in reader:
            line = reader.line_num
            try:
                stamp = parse_time(row["timestamp"])
            except ValueError:
                problems.append(f"{path}:{line}: timestamp: not ISO 8601 ({row['timestamp']!r})")
                continue
            if stamp.astype("int64") % 3600:
                problems.append(f"{path}:{line}: timestamp: not on the hour ({row['timestamp']})")
                continue
            numbers: list[float] = []
            for col in values:
                text = (row.get(col) or "").strip()
                try:
                    numbers.append(float(text) if text else np.nan)
                except ValueError:
                    problems.append(f"{path}:{line}: {col}: not a number ({text!r})")
            if len(numbers) == len(values):
                rows.append(
                    (stamp, Key(row["site"], row["accelerator_class"], row["queue"]), numbers)
                )
            if len(problems) > 20:
                break
    if problems:
        raise HistoryError("\n".join(problems))
    if not rows:
        raise HistoryError(f"{path}: no rows")
    return from_rows(rows, present)


def from_rows(
    rows: Sequence[tuple[np.datetime64, Key, Sequence[float]]],
    optional: Sequence[str] = (),
) -> History:
    """Rows of (hour, key, [allocated, pending, capacity, wait, *optional]) as a History;
    `optional` names the extra columns in their order (names from `OPTIONAL`)."""
    extra = tuple(optional)
    start = min(r[0] for r in rows)
    end = max(r[0] for r in rows)
    hours = int((end - start) // HOUR) + 1
    keys = tuple(sorted({r[1] for r in rows}))
    index = {k: i for i, k in enumerate(keys)}
    width = 4 + len(extra)
    data = np.full((width, len(keys), hours), np.nan)
    for stamp, key, numbers in rows:
        data[:, index[key], int((stamp - start) // HOUR)] = numbers[:width]
    named = {_FIELD[name]: data[4 + i] for i, name in enumerate(extra)}
    return History(start, keys, data[0], data[1], data[2], data[3], **named)
