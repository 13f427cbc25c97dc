"""What a trace describes: jobs (gangs of identical replicas) and their errors."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


class TraceError(ValueError):
    """A trace could not be read; every message names the file, the line and the field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:20]
        more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__("\n".join(shown) + more)


def read_text(path: Path) -> io.StringIO:
    """The file as text for the csv module: UTF-8, a byte-order mark accepted; a file
    that is not UTF-8 is an error naming the file and the byte, not a traceback."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceError([f"{path}: cannot be read ({exc.strerror})"]) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TraceError(
            [f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"]
        ) from exc
    return io.StringIO(text, newline="")


def duplicates(path: Path, field_name: str, named: Iterable[tuple[int, str]]) -> list[str]:
    """One problem per repeated name, naming the file, both lines and the field."""
    first: dict[str, int] = {}
    problems = []
    for line, name in named:
        if name in first:
            problems.append(
                f"{path}:{line}: {field_name}: {name!r} repeats line {first[name]}; names must be"
                " unique"
            )
        else:
            first[name] = line
    return problems


@dataclass(frozen=True, slots=True)
class Job:
    """One workload of a trace, as the simulator replays it.

    `classes` and `residency` are empty when anything will do; `queue` is empty until a
    tenant assignment fills it in (traces without tenants). `cpu_milli` and `memory_mib`
    are asked per replica, next to its accelerators (0: not asked).
    """

    id: int
    name: str
    arrival: float
    runtime: float
    replicas: int = 1
    per_replica: int = 1
    classes: frozenset[str] = field(default_factory=frozenset)
    queue: str = ""
    residency: frozenset[str] = field(default_factory=frozenset)
    cpu_milli: int = 0
    memory_mib: int = 0

    @property
    def gpus(self) -> int:
        return self.replicas * self.per_replica

    @property
    def shape(self) -> tuple[int, int, frozenset[str], frozenset[str], int, int]:
        """Jobs of one shape fit or fail together on a given fleet state."""
        return (
            self.replicas,
            self.per_replica,
            self.classes,
            self.residency,
            self.cpu_milli,
            self.memory_mib,
        )


@dataclass(frozen=True, slots=True)
class Trace:
    """Jobs sorted by arrival, plus what was skipped while reading them."""

    jobs: tuple[Job, ...]
    source: str
    skipped: int = 0
    skipped_reason: str = ""
