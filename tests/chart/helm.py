"""Running helm on the chart and reading what it renders."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from gpufleet.dev.tools import bin_dir

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gpufleet"
CRDS = ROOT / "crds"
SYNC_SCRIPT = ROOT / "hack" / "sync-chart-crds.py"
VALUES_MATRIX = sorted((CHART / "ci").glob("*-values.yaml"))
MONITORING_APIS = (
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)

Doc = dict[str, Any]


def helm_binary() -> Path | None:
    cached = bin_dir() / "helm"
    if cached.exists():
        return cached
    found = shutil.which("helm")
    return Path(found) if found else None


def helm(
    *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    binary = helm_binary()
    assert binary is not None, "helm is missing: run 'make tools'"
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def value_args(
    values: Iterable[Path] = (), sets: Sequence[str] = (), api_versions: Iterable[str] = ()
) -> list[str]:
    args: list[str] = []
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def render(
    *,
    chart: Path = CHART,
    values: Iterable[Path] = (),
    sets: Sequence[str] = (),
    api_versions: Iterable[str] = (),
    namespace: str = "gpufleet-system",
    release: str = "fleet",
) -> list[Doc]:
    out = helm(
        "template",
        release,
        str(chart),
        "--namespace",
        namespace,
        *value_args(values, sets, api_versions),
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


NOTES_PROBE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-probe
data:
  notes: {{ tpl (.Files.Get "notes-probe.txt") . | toJson }}
"""


def render_notes(
    *,
    values: Iterable[Path] = (),
    sets: Sequence[str] = (),
    namespace: str = "gpufleet-system",
    release: str = "fleet",
) -> str:
    """NOTES.txt as `helm install` prints it. `helm template` leaves NOTES out, so a copy
    of the chart renders the same text through `tpl` into a ConfigMap."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / CHART.name
        shutil.copytree(CHART, chart)
        shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-probe.txt")
        (chart / "templates" / "notes-probe.yaml").write_text(NOTES_PROBE)
        out = helm(
            "template",
            release,
            str(chart),
            "--namespace",
            namespace,
            "--show-only",
            "templates/notes-probe.yaml",
            *value_args(values, sets),
        ).stdout
    notes: str = yaml.safe_load(out)["data"]["notes"]
    return notes


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Iterable[Doc], kind: str) -> Doc:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def source_crds(directory: Path = CRDS) -> dict[str, Doc]:
    crds: dict[str, Doc] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                crds[doc["metadata"]["name"]] = doc
    return crds


def strip_chart_metadata(crd: Doc) -> Doc:
    """A rendered CRD without what the chart adds (labels, keep policy)."""
    crd = {**crd, "metadata": dict(crd["metadata"])}
    meta = crd["metadata"]
    labels = {
        k: v
        for k, v in (meta.pop("labels", None) or {}).items()
        if not (k.startswith("app.kubernetes.io/") or k == "helm.sh/chart")
    }
    annotations = {
        k: v
        for k, v in (meta.pop("annotations", None) or {}).items()
        if k != "helm.sh/resource-policy"
    }
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return crd
