"""`gpufleet crds` and `gpufleet validate`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from typer.testing import CliRunner

from api.builders import CRDS, EXAMPLES, gpufleet_examples
from gpufleet.api import crdgen
from gpufleet.cli import validate as cli

app = typer.Typer()
cli.register(app)
runner = CliRunner()


def test_crds_prints_every_crd_as_committed() -> None:
    result = runner.invoke(app, ["crds"])
    assert result.exit_code == 0
    printed = list(yaml.safe_load_all(result.stdout))
    committed = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]
    assert sorted(printed, key=str) == sorted(committed, key=str)


def test_crds_check_fails_on_a_stale_directory(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    assert runner.invoke(app, ["crds", "--check", "--output-dir", str(tmp_path)]).exit_code == 0
    next(tmp_path.glob("*.yaml")).write_text("# stale\n")
    assert runner.invoke(app, ["crds", "--check", "--output-dir", str(tmp_path)]).exit_code == 1


def test_validate_accepts_the_examples() -> None:
    files = [str(p) for p in sorted(EXAMPLES.glob("*.yaml"))]
    result = runner.invoke(app, ["validate", "--json", *files])
    assert result.exit_code == 0, result.stdout
    findings = json.loads(result.stdout)
    assert len(findings) == len(gpufleet_examples())
    assert all(f["valid"] for f in findings)


def test_validate_names_the_field_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: gpufleet.io/v1alpha1\nkind: GpuPool\nmetadata: {name: p}\n"
        "spec: {site: s, acceleratorClass: NVIDIA_H100, resourceName: nvidia.com/gpu,"
        " nodeSelector: {}, wattsPerAccelerator: -1}\n"
    )
    result = runner.invoke(app, ["validate", "--json", str(bad)])
    assert result.exit_code == 1
    (finding,) = json.loads(result.stdout)
    fields = {e["field"] for e in finding["errors"]}
    assert fields == {"spec.acceleratorClass", "spec.wattsPerAccelerator"}

    table = runner.invoke(app, ["validate", str(bad)])
    assert table.exit_code == 1
    assert "spec.acceleratorClass" in table.stdout
