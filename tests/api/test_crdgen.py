"""crds/ is generated from the models, structural, and in sync (the drift test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.builders import CRDS
from gpufleet.api import crdgen
from gpufleet.api.v1alpha1 import CATEGORY, GROUP, KINDS

COMMITTED = {path.name: yaml.safe_load(path.read_text()) for path in sorted(CRDS.glob("*.yaml"))}


@pytest.mark.parametrize("directory", [CRDS, crdgen.PACKAGE_CRD_DIR], ids=["crds", "package"])
def test_committed_crds_match_the_models(directory: Path) -> None:
    problems = crdgen.drift(directory)
    assert not problems, f"{directory} drifted from the models; run `make crds`:\n" + "\n".join(
        problems
    )


def test_package_ships_its_crds_as_package_data() -> None:
    """An installed wheel must carry the CRDs (`gpufleet dev register` applies them)."""
    import tomllib

    root = CRDS.parent
    data = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["gpufleet"]
    assert "api/crds/*.yaml" in patterns
    assert crdgen.PACKAGE_CRD_DIR.is_relative_to(root / "operator" / "gpufleet")


def test_drift_check_notices_an_edit_and_a_stray_file(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    assert crdgen.main(["--check", "--output-dir", str(tmp_path)]) == 0

    edited = tmp_path / crdgen.file_name(KINDS[0])
    edited.write_text(edited.read_text().replace("maxLength: 63", "maxLength: 64", 1))
    assert crdgen.main(["--check", "--output-dir", str(tmp_path)]) == 1

    crdgen.write(tmp_path)
    (tmp_path / f"{GROUP}_gone.yaml").write_text("{}\n")
    assert crdgen.main(["--check", "--output-dir", str(tmp_path)]) == 1
    crdgen.write(tmp_path)
    assert not (tmp_path / f"{GROUP}_gone.yaml").exists()


def test_one_crd_per_kind() -> None:
    kinds = {crd["spec"]["names"]["kind"] for crd in COMMITTED.values()}
    assert kinds == {kind.__name__ for kind in KINDS}


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}[*]")


def _schema(name: str) -> dict[str, Any]:
    return COMMITTED[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_schema_is_structural(name: str) -> None:
    for path, node in _walk(_schema(name)):
        assert "$ref" not in node, path
        assert "const" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        if "anyOf" in node:
            # The one union a structural schema allows.
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "type" in node, f"{path} has no type"
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if node.get("type") == "string" and path.startswith((".spec", ".status")):
            # Bounded strings keep CEL rules within the API server's cost budget.
            assert "maxLength" in node or "enum" in node, path


def test_optional_fields_are_nullable_not_unions() -> None:
    spec = _schema("gpufleet.io_workloads.yaml")["properties"]["spec"]["properties"]
    assert spec["minReplicas"]["nullable"] is True
    assert spec["minReplicas"]["type"] == "integer"


def test_quantities_are_int_or_string() -> None:
    spec = _schema("gpufleet.io_workloads.yaml")["properties"]["spec"]["properties"]
    for field in ("cpu", "memory"):
        assert spec[field]["x-kubernetes-int-or-string"] is True
        assert spec[field]["minimum"] == 0
        assert "-" not in spec[field]["pattern"].split("(")[1]  # no leading sign but "+"


def test_pod_template_spec_keeps_unknown_fields() -> None:
    template = _schema("gpufleet.io_workloads.yaml")["properties"]["spec"]["properties"]["template"]
    assert template["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"] is True


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_status_subresource_category_and_short_names(name: str) -> None:
    spec = COMMITTED[name]["spec"]
    assert spec["versions"][0]["subresources"] == {"status": {}}
    assert CATEGORY in spec["names"]["categories"]
    assert spec["names"]["shortNames"]


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_conditions_are_a_list_map_keyed_by_type(name: str) -> None:
    conditions = _schema(name)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "reason", "lastTransitionTime"}
    assert set(item["properties"]) >= {"observedGeneration", "message"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        (
            "gpufleet.io_workloads.yaml",
            {"Queue", "Replicas", "Per-Replica", "Phase", "Site", "Age"},
        ),
        ("gpufleet.io_gpupools.yaml", {"Site", "Accelerator", "Capacity", "Allocated", "Free"}),
        ("gpufleet.io_queues.yaml", {"Parent", "Deserved", "Allocated", "Fair-Share", "Pending"}),
        ("gpufleet.io_sites.yaml", {"Type", "Jurisdiction", "Connection", "Schedulable"}),
    ],
)
def test_printer_columns(name: str, columns: set[str]) -> None:
    printed = COMMITTED[name]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert columns <= {c["name"] for c in printed if not c.get("priority")}


def _rules(name: str) -> list[dict[str, str]]:
    return [
        rule
        for _, node in _walk(_schema(name))
        for rule in node.get("x-kubernetes-validations", [])
    ]


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_every_cel_rule_names_a_field(name: str) -> None:
    for rule in _rules(name):
        assert rule["message"].startswith(("spec.", "status.", "matchExpressions")), rule


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("gpufleet.io_sites.yaml", "spec.jurisdiction"),
        ("gpufleet.io_workloads.yaml", "status.placement"),
        ("gpufleet.io_workloads.yaml", "spec.queue"),
        ("gpufleet.io_workloads.yaml", "spec.residency"),
    ],
)
def test_immutability_is_a_transition_rule(name: str, field: str) -> None:
    (rule,) = [r for r in _rules(name) if "oldSelf" in r["rule"] and r["message"].startswith(field)]
    assert rule["reason"] == "FieldValueForbidden"
