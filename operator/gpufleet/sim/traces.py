"""Read a trace in either supported format, telling them apart by the header row."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

from gpufleet.sim import csvtrace, openb
from gpufleet.sim.jobs import Trace, TraceError, read_text

TraceFormat = Literal["auto", "openb", "csv"]


def detect(path: Path) -> Literal["openb", "csv"]:
    header = next(csv.reader(read_text(path)), [])
    return "openb" if "num_gpu" in {h.strip() for h in header} else "csv"


def load_trace(path: Path, fmt: TraceFormat = "auto") -> Trace:
    if not path.is_file():
        raise TraceError([f"trace: {path} is not a readable file"])
    kind = detect(path) if fmt == "auto" else fmt
    return openb.read_trace(path) if kind == "openb" else csvtrace.read_trace(path)
