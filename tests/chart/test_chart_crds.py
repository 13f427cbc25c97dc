"""The chart's CRDs are crds/ synced by hack/sync-chart-crds.py, wrapped for Helm."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from .helm import CHART, CRDS, SYNC_SCRIPT, of_kind, render, source_crds, strip_chart_metadata


def load_sync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_chart_crds", SYNC_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = load_sync()

TRICKY_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "widgets.example.io",
        "annotations": {"example.io/origin": "models"},
        "labels": {"example.io/tier": "api"},
    },
    "spec": {
        "group": "example.io",
        "names": {
            "kind": "Widget",
            "plural": "widgets",
            "singular": "widget",
            "listKind": "WidgetList",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        # Helm must not read these as template actions.
                        "description": "Use {{ .Values }} and {{- end }} literally.",
                        "x-kubernetes-validations": [
                            {
                                "rule": "size(self.metadata.name) < 64",
                                "message": "name {{too}} long",
                            }
                        ],
                        "properties": {"count": {"type": "integer", "maximum": 9007199254740991}},
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def scratch_chart(tmp_path: Path) -> Path:
    chart = tmp_path / "gpufleet"
    shutil.copytree(CHART, chart)
    shutil.rmtree(chart / "templates" / "crds")
    return chart


def write_source(directory: Path, *docs: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "example.io_widgets.yaml").write_text(yaml.safe_dump_all(docs))
    return directory


@pytest.mark.usefixtures("needs_helm")
def test_a_synced_crd_renders_back_to_its_source(tmp_path: Path, scratch_chart: Path) -> None:
    source = write_source(tmp_path / "crds", TRICKY_CRD)
    sync.sync(source, scratch_chart / "templates" / "crds")
    (crd,) = of_kind(render(chart=scratch_chart), "CustomResourceDefinition")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gpufleet"
    assert strip_chart_metadata(crd) == TRICKY_CRD


@pytest.mark.usefixtures("needs_helm")
def test_crds_follow_the_install_and_keep_switches(tmp_path: Path, scratch_chart: Path) -> None:
    sync.sync(write_source(tmp_path / "crds", TRICKY_CRD), scratch_chart / "templates" / "crds")
    assert not of_kind(
        render(chart=scratch_chart, sets=["crds.install=false"]), "CustomResourceDefinition"
    )
    (unkept,) = of_kind(
        render(chart=scratch_chart, sets=["crds.keep=false"]), "CustomResourceDefinition"
    )
    assert "helm.sh/resource-policy" not in (unkept["metadata"].get("annotations") or {})


def test_check_reports_changed_and_stale_templates(tmp_path: Path) -> None:
    source = write_source(tmp_path / "crds", TRICKY_CRD)
    target = tmp_path / "templates"
    assert sync.sync(source, target) == ["widgets.example.io.yaml"]
    assert sync.sync(source, target, check=True) == []
    (target / "old.example.io.yaml").write_text("stale")
    changed = {**TRICKY_CRD, "spec": {**TRICKY_CRD["spec"], "scope": "Cluster"}}
    write_source(source, changed)
    assert sync.sync(source, target, check=True) == [
        "widgets.example.io.yaml",
        "old.example.io.yaml",
    ]
    sync.sync(source, target)
    assert sorted(p.name for p in target.iterdir()) == ["widgets.example.io.yaml"]


def test_a_source_that_is_not_a_crd_is_refused(tmp_path: Path) -> None:
    source = write_source(tmp_path / "crds", {"apiVersion": "v1", "kind": "ConfigMap"})
    with pytest.raises(sync.SyncError, match="kind must be CustomResourceDefinition"):
        sync.expected(source)


def test_the_chart_is_in_sync_with_crds() -> None:
    result = subprocess.run(
        [sys.executable, str(SYNC_SCRIPT), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("needs_helm")
def test_the_rendered_chart_crds_equal_crds_dir() -> None:
    source = source_crds(CRDS)
    # An empty crds/ is a broken build (`make crds` writes it), not a reason to skip.
    assert source, f"{CRDS} holds no CRDs: run 'make crds'"
    rendered = {
        crd["metadata"]["name"]: strip_chart_metadata(crd)
        for crd in of_kind(render(), "CustomResourceDefinition")
    }
    assert rendered.keys() == source.keys()
    for name, crd in source.items():
        assert rendered[name] == crd, name
