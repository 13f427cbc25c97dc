"""The build check: a compiled core older than its source is found."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import gpufleet.core
from gpufleet.corebuild import core_build, stale_modules


def test_core_build_names_the_loaded_build() -> None:
    expected = os.environ.get("GPUFLEET_EXPECT_CORE")
    if expected is None:
        assert core_build() in {"compiled", "interpreted"}
    else:
        assert core_build() == expected


def _core_dir(root: Path) -> Path:
    core = root / "operator" / "gpufleet" / "core"
    core.mkdir(parents=True)
    (core / "cycle.py").write_text("x = 1\n")
    (core / "state.py").write_text("x = 1\n")
    ext = core / "cycle.cpython-311-x86_64-linux-gnu.so"
    ext.write_bytes(b"")
    (core / "state.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    os.utime(ext, (1_000, 1_000))
    os.utime(core / "state.py", (1_000, 1_000))
    return core


def test_an_extension_older_than_its_source_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "setup.py").write_text("")
    monkeypatch.setattr(gpufleet.core, "__path__", [str(_core_dir(tmp_path))])
    # Only the extension whose source changed after it was built is reported.
    assert stale_modules() == ["cycle"]


def test_an_installed_package_is_never_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # site-packages has no setup.py: install order decides the times there.
    monkeypatch.setattr(gpufleet.core, "__path__", [str(_core_dir(tmp_path))])
    assert stale_modules() == []
