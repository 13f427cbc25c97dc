"""Which build of the scheduling core is loaded: compiled by mypyc, or interpreted.

`make` compiles `gpufleet.core` in place (setup.py); a C extension next to its
source shadows the `.py`, so a source edited after the last compile would not
run. `stale_modules` finds that case so tests and benchmarks can refuse it.
"""

from __future__ import annotations

import types
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import gpufleet.core
from gpufleet.core import cycle


def core_build() -> str:
    """ "compiled" when the cycle runs as a C extension, else "interpreted"."""
    return "interpreted" if isinstance(cycle.schedule, types.FunctionType) else "compiled"


def stale_modules() -> list[str]:
    """Core modules whose in-place compiled extension is older than their source.

    Only a source checkout (setup.py beside `operator/`) compiles in place; an
    installed wheel writes both files at install time, in any order.
    """
    stale = []
    for directory in gpufleet.core.__path__:
        if not (Path(directory).parents[2] / "setup.py").exists():
            continue
        for path in sorted(Path(directory).iterdir()):
            suffix = next((s for s in EXTENSION_SUFFIXES if path.name.endswith(s)), None)
            if suffix is None:
                continue
            source = path.with_name(path.name.removesuffix(suffix) + ".py")
            if source.exists() and source.stat().st_mtime > path.stat().st_mtime:
                stale.append(source.stem)
    return stale


def stale_error() -> str | None:
    """What to tell a person when the compiled core is older than its source, else None."""
    stale = stale_modules()
    if not stale:
        return None
    return (
        f"gpufleet.core is compiled from an older source ({', '.join(stale)}): run"
        " `make compile` to rebuild it, or `make pure` to run the core interpreted"
    )
