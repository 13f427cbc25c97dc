"""gpufleet's own CSV trace format (documented in docs/simulator.md).

Header row, then one job per row:

    name,arrival,runtime,replicas,accelerators,classes,queue,residency
    train-a,0,3600,2,8,nvidia-h100|nvidia-h200,research,DE|EU

`arrival` and `runtime` are seconds; `accelerators` is per replica; `classes` and
`residency` are '|'-separated and empty for "any"; `queue` may be empty when the
tenant assignment fills it in. Only `arrival`, `runtime` and `accelerators` are required.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gpufleet.sim.jobs import Job, Trace, TraceError, duplicates, read_text

COLUMNS = (
    "name",
    "arrival",
    "runtime",
    "replicas",
    "accelerators",
    "classes",
    "queue",
    "residency",
)
REQUIRED = ("arrival", "runtime", "accelerators")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLACE = re.compile(r"^[A-Z]{2}$|^[A-Za-z][A-Za-z0-9-]*$")


def _split(value: object) -> object:
    if isinstance(value, str):
        return frozenset(v.strip() for v in value.split("|") if v.strip())
    return value


class CsvRow(BaseModel):
    """One row; pydantic names the field and the rule when a value is wrong."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    arrival: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    runtime: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    # Bounds far above any real gang, so that a typo is an error, not an overflow.
    replicas: Annotated[int, Field(ge=1, le=100_000)] = 1
    accelerators: Annotated[int, Field(ge=1, le=1024)]
    classes: frozenset[str] = frozenset()
    queue: str = ""
    residency: frozenset[str] = frozenset()

    _split_lists = field_validator("classes", "residency", mode="before")(_split)

    @field_validator("classes")
    @classmethod
    def _dns_labels(cls, value: frozenset[str]) -> frozenset[str]:
        bad = sorted(v for v in value if not _DNS_LABEL.match(v))
        if bad:
            raise ValueError(f"accelerator classes must be DNS labels: {', '.join(bad)}")
        return value

    @field_validator("residency")
    @classmethod
    def _places(cls, value: frozenset[str]) -> frozenset[str]:
        bad = sorted(v for v in value if not _PLACE.match(v))
        if bad:
            raise ValueError(f"entries must be ISO country codes or region names: {', '.join(bad)}")
        return value


def _describe(error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "row"
        msg = str(item["msg"]).removeprefix("Value error, ")
        out.append(f"{field}: {msg} (got {item.get('input')!r})")
    return out


def read_trace(path: Path) -> Trace:
    """Read the whole file; every malformed row is reported with its line number."""
    problems: list[str] = []
    jobs: list[Job] = []
    names: list[tuple[int, str]] = []
    with read_text(path) as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        unknown = [h for h in header if h not in COLUMNS]
        missing = [c for c in REQUIRED if c not in header]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing required column(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown column(s) {', '.join(unknown)}")
            raise TraceError(
                [f"{path}:1: header: {'; '.join(parts)} (known: {', '.join(COLUMNS)})"]
            )
        reader.fieldnames = header
        for raw in reader:
            line = reader.line_num
            if None in raw:
                problems.append(f"{path}:{line}: row: more values than columns")
                continue
            values = {k: v.strip() for k, v in raw.items() if v is not None and v.strip() != ""}
            try:
                row = CsvRow.model_validate(values)
            except ValidationError as exc:
                problems.extend(f"{path}:{line}: {p}" for p in _describe(exc))
                continue
            names.append((line, row.name or f"job-{line}"))
            jobs.append(
                Job(
                    id=len(jobs),
                    name=row.name or f"job-{line}",
                    arrival=row.arrival,
                    runtime=row.runtime,
                    replicas=row.replicas,
                    per_replica=row.accelerators,
                    classes=row.classes,
                    queue=row.queue,
                    residency=row.residency,
                )
            )
    problems += duplicates(path, "name", names)
    if problems:
        raise TraceError(problems)
    if not jobs:
        raise TraceError([f"{path}: no jobs (a header row and at least one job row are needed)"])
    jobs.sort(key=lambda j: (j.arrival, j.id))
    return Trace(tuple(jobs), str(path))
