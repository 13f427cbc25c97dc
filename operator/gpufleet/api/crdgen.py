"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic models.

pydantic already writes JSON Schema; this turns it into the *structural*
OpenAPI v3 schema the API server demands: references inlined, ``anyOf`` with
null turned into ``nullable``, ``const`` into ``enum``, map key patterns into
CEL rules, and no keyword the API server would refuse.

    python -m gpufleet.api.crdgen            # write crds/ and the package's copy
    python -m gpufleet.api.crdgen --check    # exit 1 if either differs from the models

The package carries its own copy (``gpufleet/api/crds/``, package data) so that an
installed wheel can install its CRDs without a source tree.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from gpufleet.api.v1alpha1 import CATEGORY, GROUP, KINDS, VERSION, Resource
from gpufleet.api.v1alpha1.crdinfo import AGE

Schema = dict[str, Any]

HEADER = "# Generated from gpufleet.api.v1alpha1 by `python -m gpufleet.api.crdgen`; do not edit.\n"

# Keywords the API server's JSONSchemaProps accepts that pydantic may emit.
_ALLOWED = frozenset(
    {
        "type",
        "format",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "default",
        "nullable",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "anyOf",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)
_DROPPED = frozenset({"title", "$defs"})


class SchemaError(ValueError):
    """The models produce a schema that cannot be made structural."""


def _is_null(node: Schema) -> bool:
    return node == {"type": "null"}


def _structural(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """Convert one pydantic JSON Schema node (and its children) at ``path``."""
    node = dict(node)
    for key in _DROPPED:
        node.pop(key, None)

    if "$ref" in node:
        name = node.pop("$ref").removeprefix("#/$defs/")
        # Keywords beside the reference (a field's description) win over the target's.
        return {**_structural(defs[name], defs, path), **_structural(node, defs, path)}

    nullable = False
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [option for option in node.pop("anyOf") if not _is_null(option)]
        if len(options) != 1:
            raise SchemaError(f"{path or '<root>'}: a union other than X | None is not structural")
        nullable = True
        node = {**_structural(options[0], defs, path), **_structural(node, defs, path)}

    if "const" in node:
        node["enum"] = [node.pop("const")]
        node.setdefault("type", "string")

    if "default" in node:
        default = node["default"]
        # Only scalar defaults help: null and empty containers would only add
        # noise to stored objects.
        if default is None or isinstance(default, list | dict):
            del node["default"]

    if "exclusiveMinimum" in node or "exclusiveMaximum" in node:
        raise SchemaError(f"{path}: use ge/le, the API server's exclusive bounds are booleans")

    if "properties" in node:
        node["properties"] = {
            name: _structural(child, defs, f"{path}.{name}" if path else name)
            for name, child in node["properties"].items()
        }
    if "items" in node:
        node["items"] = _structural(node["items"], defs, f"{path}[]")

    if "patternProperties" in node:
        # pydantic's form of dict[ConstrainedKey, V]: one key pattern and the value schema.
        ((key_pattern, value),) = node.pop("patternProperties").items()
        node["additionalProperties"] = value
        node.setdefault("propertyNames", {})["pattern"] = key_pattern

    extra = node.get("additionalProperties")
    if extra is False:
        # Unknown fields are pruned or, with strict field validation, refused.
        del node["additionalProperties"]
    elif extra is True or extra == {}:
        del node["additionalProperties"]
        node["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(extra, dict):
        node["additionalProperties"] = _structural(extra, defs, f"{path}[*]")

    if "propertyNames" in node:
        node.setdefault("x-kubernetes-validations", []).append(
            _key_rule(node.pop("propertyNames"), path)
        )

    if nullable:
        node["nullable"] = True

    if "x-kubernetes-validations" in node:
        # Shared types (timestamps) write "{field}"; name the field they sit in.
        node["x-kubernetes-validations"] = [
            {**rule, "message": rule["message"].replace("{field}", path)}
            for rule in node["x-kubernetes-validations"]
        ]

    unknown = set(node) - _ALLOWED
    if unknown:
        raise SchemaError(f"{path or '<root>'}: keywords {sorted(unknown)} are not supported")
    return _ordered(node)


# Reading order for the committed YAML: what a node is before what it holds.
_ORDER = {
    key: index
    for index, key in enumerate(
        [
            "description",
            "type",
            "format",
            "nullable",
            "x-kubernetes-int-or-string",
            "anyOf",
            "enum",
            "default",
            "minimum",
            "maximum",
            "minLength",
            "maxLength",
            "pattern",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
            "x-kubernetes-list-type",
            "x-kubernetes-list-map-keys",
            "x-kubernetes-preserve-unknown-fields",
            "required",
            "properties",
            "additionalProperties",
            "items",
            "x-kubernetes-validations",
        ]
    )
}


def _ordered(node: Schema) -> Schema:
    return dict(sorted(node.items(), key=lambda item: _ORDER.get(item[0], len(_ORDER))))


def _key_rule(names: Schema, path: str) -> dict[str, str]:
    """A CEL rule for map keys: structural schemas have no ``propertyNames``."""
    checks = []
    if "pattern" in names:
        checks.append(f"k.matches({json.dumps(names['pattern'])})")
    if "maxLength" in names:
        checks.append(f"size(k) <= {names['maxLength']}")
    if "minLength" in names:
        checks.append(f"size(k) >= {names['minLength']}")
    if not checks:
        raise SchemaError(f"{path}: map keys need a pattern or a length bound")
    return {
        "rule": f"self.all(k, {' && '.join(checks)})",
        "message": f"{path} keys must be Kubernetes label keys (optional DNS prefix/, name)",
    }


def _check_bounded(node: Schema, path: str) -> None:
    """Every list and string needs a bound, or the API server cannot cost CEL rules."""
    kind = node.get("type")
    if kind == "array" and "maxItems" not in node:
        raise SchemaError(f"{path}: lists need max_length (maxItems)")
    if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
        raise SchemaError(f"{path}: maps need max_length (maxProperties)")
    if kind == "string" and "maxLength" not in node and "enum" not in node:
        raise SchemaError(f"{path}: strings need max_length (maxLength) or an enum")
    for name, child in node.get("properties", {}).items():
        _check_bounded(child, f"{path}.{name}")
    if "items" in node:
        _check_bounded(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        _check_bounded(node["additionalProperties"], f"{path}[*]")


def openapi_schema(kind: type[Resource]) -> Schema:
    """The structural openAPIV3Schema of ``kind``."""
    raw = kind.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    properties = raw["properties"]
    spec = _structural(properties["spec"], defs, "spec")
    status = _structural(properties["status"], defs, "status")
    status.pop("nullable", None)
    for name, part in (("spec", spec), ("status", status)):
        _check_bounded(part, name)
    schema: Schema = {
        "description": kind.__doc__.strip() if kind.__doc__ else "",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if raw.get("x-kubernetes-validations"):
        schema["x-kubernetes-validations"] = raw["x-kubernetes-validations"]
    return schema


def crd(kind: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition for ``kind``."""
    info = kind.crd
    name = kind.__name__
    names: dict[str, Any] = {
        "kind": name,
        "listKind": f"{name}List",
        "plural": info.plural,
        "singular": name.lower(),
        "categories": [CATEGORY],
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": info.scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.to_crd() for c in (*info.columns, AGE)],
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


def file_name(kind: type[Resource]) -> str:
    return f"{GROUP}_{kind.crd.plural}.yaml"


def render(kind: type[Resource]) -> str:
    body = yaml.safe_dump(crd(kind), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def rendered() -> dict[str, str]:
    """File name → YAML text, for every kind."""
    return {file_name(kind): render(kind) for kind in KINDS}


def drift(directory: Path) -> list[str]:
    """Differences between ``directory`` and the models, as unified diffs; empty when in sync."""
    problems = []
    wanted = rendered()
    for name, text in wanted.items():
        path = directory / name
        have = path.read_text() if path.exists() else ""
        if have != text:
            diff = difflib.unified_diff(
                have.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{path} (committed)",
                tofile=f"{path} (from the models)",
            )
            problems.append("".join(diff) or f"{path}: missing")
    for path in sorted(directory.glob(f"{GROUP}_*.yaml")):
        if path.name not in wanted:
            problems.append(f"{path}: no model generates this file any more")
    return problems


def write(directory: Path) -> list[Path]:
    """Write every CRD into ``directory`` and remove ones no model generates."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = rendered()
    for path in directory.glob(f"{GROUP}_*.yaml"):
        if path.name not in wanted:
            path.unlink()
    written = []
    for name, text in wanted.items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


# The copy shipped inside the package (package data), next to this module.
PACKAGE_CRD_DIR = Path(__file__).with_name("crds")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpufleet.api.crdgen", description=__doc__)
    parser.add_argument(
        "--output-dir",
        type=Path,
        action="append",
        help="directory to write or check (repeatable; default: crds/ and the package's copy)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a directory differs from the models"
    )
    args = parser.parse_args(argv)
    directories: list[Path] = args.output_dir or [Path("crds"), PACKAGE_CRD_DIR]
    if args.check:
        failed = False
        for directory in directories:
            problems = drift(directory)
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print(
                    f"{directory} is out of date: run `make crds` and commit the result",
                    file=sys.stderr,
                )
                failed = True
            else:
                print(f"{directory}: {len(KINDS)} CRDs match the models")
        return 1 if failed else 0
    for directory in directories:
        for path in write(directory):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
