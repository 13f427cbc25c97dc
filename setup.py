"""Build hook: compile the scheduling core with mypyc.

The core (`gpufleet.core`) is typed Python; mypyc turns its modules into C
extensions that run the same code about 1.5x faster. The plain-Python
reference cycle stays interpreted: it is what the compiled cycle is measured
and checked against. Set GPUFLEET_PURE_PYTHON=1 to install without a C
compiler; the source then runs as is.
"""

from __future__ import annotations

import os

from setuptools import setup

CORE = "operator/gpufleet/core"
COMPILED = (
    "model",
    "fairshare",
    "fairness",
    "snapshot",
    "domains",
    "cyclestate",
    "placement",
    "explain",
    "cycle",
)


def ext_modules() -> list[object]:
    if os.environ.get("GPUFLEET_PURE_PYTHON"):
        return []
    from mypyc.build import mypycify

    # Module names come from the source root; the project's mypy config (with its
    # pydantic plugin) is not needed to compile the core.
    os.environ["MYPYPATH"] = "operator"
    return list(
        mypycify(
            [
                "--config-file=",
                "--strict",
                "--explicit-package-bases",
                *(f"{CORE}/{name}.py" for name in COMPILED),
            ],
            opt_level="3",
            group_name="gpufleet_core",
        )
    )


setup(ext_modules=ext_modules())
