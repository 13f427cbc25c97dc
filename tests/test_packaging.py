"""The operator runs without the development tooling, and an installed wheel carries what it needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What `gpufleet run` and `gpufleet agent` load: the Kopf handlers, the loop, the sites, the agent.
OPERATOR_MODULES = (
    "gpufleet.handlers.operator",
    "gpufleet.control.operator",
    "gpufleet.control.loop",
    "gpufleet.sites.fence",
    "gpufleet.sites.manager",
    "gpufleet.metrics",
)


def test_importing_the_operator_loads_no_development_tooling() -> None:
    code = (
        "import sys\n"
        f"for name in {OPERATOR_MODULES!r}: __import__(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['gpufleet', 'dev'], ['gpufleet', 'sim'], ['gpufleet', 'bench'], ['gpufleet', 'cli']))\n"
        "print(','.join(loaded))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert res.stdout.strip() == "", f"the operator imported tooling: {res.stdout.strip()}"


@pytest.mark.slow
def test_wheel_ships_the_crds_and_the_dev_fleet(tmp_path: Path) -> None:
    # A copy of the sources, so no earlier build/ directory can lend files the wheel would lack.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "operator", src / "operator", ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path / "wheel"
    # A pure wheel (no mypyc) is enough to see the package data; no network, no build isolation.
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "GPUFLEET_PURE_PYTHON": "1"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = out.glob("gpufleet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    crds = sorted(n for n in names if n.startswith("gpufleet/api/crds/"))
    assert [Path(n).name for n in crds] == sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert "gpufleet/dev/fleets/dev.yaml" in names
    assert "gpufleet/dev/kwok/default-stages.yaml" in names
    assert "gpufleet/py.typed" in names
    assert "gpufleet/cli/__main__.py" in names
