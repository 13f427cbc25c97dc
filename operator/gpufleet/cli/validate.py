"""`gpufleet crds` and `gpufleet validate`: the API from the command line."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gpufleet.api import crdgen
from gpufleet.api.v1alpha1 import API_VERSION, KINDS

_MODELS = {kind.__name__: kind for kind in KINDS}


def crds(
    output_dir: Annotated[
        Path | None, typer.Option(help="Write one file per CRD here instead of printing them.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if --output-dir differs from the models.")
    ] = False,
) -> None:
    """Print the CustomResourceDefinitions generated from the models (pipe into kubectl apply -f -)."""
    if check:
        raise typer.Exit(crdgen.main(["--check", "--output-dir", str(output_dir or "crds")]))
    if output_dir is not None:
        raise typer.Exit(crdgen.main(["--output-dir", str(output_dir)]))
    typer.echo("---\n".join(crdgen.rendered().values()), nl=False)


@dataclass
class Finding:
    file: str
    kind: str
    name: str
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


def _field(loc: tuple[int | str, ...]) -> str:
    # pydantic's location, shown the way the API server names fields.
    # Union members ("int", "str") and validator wrappers are pydantic's, not fields.
    parts = [str(p) for p in loc if p not in ("int", "str") and not str(p).startswith("function-")]
    path = ".".join(parts)
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", path)


def _check(path: Path, document: dict[str, Any]) -> Finding | None:
    kind = document.get("kind", "")
    if document.get("apiVersion") != API_VERSION or kind not in _MODELS:
        return None  # not ours (Namespaces and the like)
    name = str(document.get("metadata", {}).get("name", "?"))
    finding = Finding(str(path), kind, name)
    try:
        _MODELS[kind].model_validate(document)
    except ValidationError as exc:
        finding.errors = [
            {"field": _field(error["loc"]), "message": error["msg"]} for error in exc.errors()
        ]
    return finding


def validate(
    files: Annotated[list[Path], typer.Argument(help="YAML manifests, several documents each.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check gpufleet manifests against the API without a cluster; exit 1 if any is invalid."""
    findings: list[Finding] = []
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict):
                finding = _check(path, document)
                if finding is not None:
                    findings.append(finding)
    if as_json:
        typer.echo(json.dumps([{**asdict(f), "valid": f.valid} for f in findings], indent=2))
    else:
        table = Table("file", "kind", "name", "result")
        for finding in findings:
            result = (
                "[green]valid[/]"
                if finding.valid
                else "\n".join(
                    f"[red]{escape(e['field'])}[/]: {escape(e['message'])}" for e in finding.errors
                )
            )
            table.add_row(escape(finding.file), finding.kind, escape(finding.name), result)
        Console().print(table)
    if any(not f.valid for f in findings):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("crds")(crds)
    app.command("validate")(validate)
