"""matplotlib is the `sim` extra: without it every command but the charts works."""

from __future__ import annotations

import subprocess
import sys

BLOCK = "import sys; sys.modules['matplotlib'] = None; "


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, check=False
    )


def test_the_cli_loads_without_matplotlib() -> None:
    res = _run("from gpufleet.cli import main; sys.argv = ['gpufleet', '--help']; main()")
    assert res.returncode == 0, res.stderr
    assert "simulate" in res.stdout


def test_a_plot_without_matplotlib_says_what_to_install() -> None:
    res = _run("from gpufleet.cli.simulate import _plots; _plots()")
    assert res.returncode != 0
    assert "pip install 'gpufleet[sim]'" in res.stdout + res.stderr
