"""Hypothesis strategies for malformed gpufleet objects.

Each object is a valid example (spec, or a valid status) with exactly one
thing broken. Breaks come from two places, so the generator follows the API as
it grows: the generated CRD schema (wrong types, enums, patterns, bounds,
lengths, required fields, unknown fields, duplicate list keys) and the
cross-field rules that only CEL can state.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import strategies as st

from api.builders import Obj, gpufleet_examples
from gpufleet.api import crdgen, regions
from gpufleet.api.v1alpha1 import KINDS

Part = Literal["spec", "status"]
Path = tuple[str | int, ...]

SCHEMAS = {kind.__name__: crdgen.openapi_schema(kind) for kind in KINDS}
KIND_NAMES = sorted(SCHEMAS)
BASES: dict[str, list[Obj]] = {
    kind: [o for o in gpufleet_examples() if o["kind"] == kind] for kind in KIND_NAMES
}

NOW = "2026-11-28T12:00:00Z"
_CONDITIONS = [
    {
        "type": "Ready",
        "status": "True",
        "reason": "AllGood",
        "message": "ready",
        "observedGeneration": 1,
        "lastTransitionTime": NOW,
    }
]
# A valid status per kind, for breaking the /status side of the API.
STATUSES: dict[str, Obj] = {
    "Site": {
        "observedGeneration": 1,
        "connection": {"state": "Connected", "lastHeartbeat": NOW, "reason": "Heartbeat"},
        "capacity": [{"acceleratorClass": "nvidia-h100", "capacity": 128, "allocated": 64}],
        "powerInUseKw": 61.5,
        "conditions": _CONDITIONS,
    },
    "GpuPool": {
        "observedGeneration": 1,
        "nodesReady": 15,
        "nodesTotal": 16,
        "capacity": 128,
        "allocated": 64,
        "free": 64,
        "fragmentation": 0.25,
        "conditions": _CONDITIONS,
    },
    "Queue": {
        "observedGeneration": 1,
        "resources": [
            {"acceleratorClass": "nvidia-h100", "allocated": 64, "fairShare": 72.5, "pending": 16}
        ],
        "totals": {"deserved": 64, "allocated": 64, "fairShare": 72.5, "pending": 16},
        "admittedWorkloads": 3,
        "pendingWorkloads": 1,
        "conditions": _CONDITIONS,
    },
    "Workload": {
        "observedGeneration": 1,
        "phase": "Running",
        "epoch": 1,
        "placement": {
            "site": "onprem-fra",
            "pool": "fra-h100",
            "epoch": 1,
            "replicas": [{"index": 0, "node": "fra-h100-0"}, {"index": 1, "node": "fra-h100-1"}],
            "admittedAt": NOW,
        },
        "verdicts": [
            {
                "site": "factory-osl",
                "rule": "Residency",
                "message": "NO is not in EU",
                "nearestChange": "allow region EEA",
            }
        ],
        "queuePosition": 0,
        "startedAt": NOW,
        "conditions": _CONDITIONS,
    },
}


@dataclass(frozen=True)
class Malformed:
    kind: str
    part: Part
    obj: Obj
    what: str

    def __str__(self) -> str:
        return f"{self.kind} {self.part}: {self.what}"


# --- walking an object along its schema ----------------------------------------


def _nodes(
    value: Any, schema: dict[str, Any], path: Path
) -> Iterator[tuple[Path, Any, dict[str, Any]]]:
    yield path, value, schema
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return  # the pod spec: anything goes below here
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            if properties and key in properties:
                yield from _nodes(child, properties[key], (*path, key))
            elif isinstance(extra, dict):
                yield from _nodes(child, extra, (*path, key))
    elif isinstance(value, list) and "items" in schema:
        for index, child in enumerate(value):
            yield from _nodes(child, schema["items"], (*path, index))


def _set(obj: Obj, path: Path, value: Any) -> None:
    node: Any = obj
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _get(obj: Obj, path: Path) -> Any:
    node: Any = obj
    for part in path:
        node = node[part]
    return node


def _show(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


# --- what can be broken at one node ---------------------------------------------

_texts = st.text(max_size=12)
_non_integral = st.floats(
    allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9
).filter(lambda f: not f.is_integer())
_WRONG_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.one_of(st.integers(), st.booleans(), _non_integral, st.lists(_texts, max_size=2)),
    "integer": st.one_of(_texts, st.booleans(), _non_integral, st.lists(st.integers(), max_size=2)),
    "number": st.one_of(_texts, st.booleans(), st.lists(st.integers(), min_size=1, max_size=2)),
    "boolean": st.one_of(_texts, st.integers(), _non_integral),
    "array": st.one_of(
        _texts, st.integers(), st.booleans(), st.dictionaries(_texts, st.integers(), max_size=2)
    ),
    "object": st.one_of(_texts, st.integers(), st.booleans(), st.lists(st.integers(), max_size=2)),
    "int-or-string": st.one_of(
        st.booleans(),
        _non_integral,
        st.lists(st.integers(), max_size=2),
        st.dictionaries(_texts, _texts, max_size=1),
    ),
}
_BAD_TIMES = st.sampled_from(["yesterday", "2026-13-01T00:00:00Z", "28/11/2026", "", "12:00:00"])


def _matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def _breaks(draw: st.DrawFn, value: Any, schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """(description, replacement) pairs that each make ``value`` invalid under ``schema``."""
    out: list[tuple[str, Any]] = []
    kind = "int-or-string" if schema.get("x-kubernetes-int-or-string") else schema.get("type")
    if kind in _WRONG_TYPES:
        out.append(("wrong type", draw(_WRONG_TYPES[kind])))
    if "enum" in schema:
        out.append(("not in enum", draw(_texts.filter(lambda s: s not in schema["enum"]))))
    if isinstance(value, str) or kind == "int-or-string":
        if "pattern" in schema:
            out.append(
                (
                    "pattern",
                    draw(st.text(max_size=20).filter(lambda s: not _matches(schema["pattern"], s))),
                )
            )
        if "maxLength" in schema:
            out.append(("too long", "1" * (schema["maxLength"] + draw(st.integers(1, 5)))))
        if schema.get("format") == "date-time":
            out.append(("not a date-time", draw(_BAD_TIMES)))
    if (isinstance(value, int | float) and not isinstance(value, bool)) or kind == "int-or-string":
        whole = kind in ("integer", "int-or-string")
        if "minimum" in schema:
            low = schema["minimum"]
            below = (
                draw(st.integers(low - 10**6, low - 1))
                if whole
                # -0.0 equals 0: not below a minimum of 0.
                else draw(st.floats(low - 1e6, low, allow_nan=False).filter(lambda f: f < low))
            )
            out.append(("below minimum", below))
        if "maximum" in schema:
            high = schema["maximum"]
            above = (
                draw(st.integers(high + 1, high + 10**6))
                if whole
                else draw(st.floats(high, high + 1e6, allow_nan=False).filter(lambda f: f > high))
            )
            out.append(("above maximum", above))
    if isinstance(value, list):
        if schema.get("minItems", 0) > 0:
            out.append(("too few items", []))
        if value and schema.get("maxItems", 10**6) <= 64:
            out.append(("too many items", [copy.deepcopy(value[0])] * (schema["maxItems"] + 1)))
        if value and schema.get("x-kubernetes-list-type") in ("set", "map"):
            out.append(("duplicate item", [*copy.deepcopy(value), copy.deepcopy(value[0])]))
    if isinstance(value, dict):
        present_required = [k for k in schema.get("required", []) if k in value]
        if present_required:
            gone = draw(st.sampled_from(present_required))
            out.append((f"missing required {gone}", {k: v for k, v in value.items() if k != gone}))
        if "properties" in schema:
            unknown = draw(
                st.from_regex(r"\A[a-z][a-zA-Z]{2,12}\Z").filter(
                    lambda k: k not in schema["properties"]
                )
            )
            out.append((f"unknown field {unknown}", {**copy.deepcopy(value), unknown: 1}))
        rules = schema.get("x-kubernetes-validations", [])
        if isinstance(schema.get("additionalProperties"), dict) and any(
            "k.matches" in r["rule"] for r in rules
        ):
            pattern = re.search(r'k\.matches\("(.*?)"\)', rules[0]["rule"])
            assert pattern is not None
            key_pattern = pattern.group(1).encode().decode("unicode_escape")
            bad_key = draw(
                st.text(min_size=1, max_size=12).filter(lambda k: not _matches(key_pattern, k))
            )
            out.append((f"bad map key {bad_key!r}", {**value, bad_key: "x"}))
        if (
            "maxProperties" in schema
            and schema.get("additionalProperties", {}).get("type") == "string"
        ):
            many = {f"k{i}": "v" for i in range(schema["maxProperties"] + 1)}
            out.append(("too many map entries", many))
    return out


@st.composite
def schema_break(draw: st.DrawFn, kind: str, part: Part, base: Obj) -> Malformed:
    schema = SCHEMAS[kind]["properties"][part]
    locations = [
        (path, value, node)
        for path, value, node in _nodes(base[part], schema, (part,))
        if len(path) > 1  # a whole spec of the wrong type is too easy
    ]
    while True:
        path, value, node = draw(st.sampled_from(locations))
        options = _breaks(draw, value, node)
        if options:
            break
    what, replacement = draw(st.sampled_from(options))
    obj = copy.deepcopy(base)
    _set(obj, path, replacement)
    return Malformed(kind, part, obj, f"{_show(path)}: {what}")


# --- cross-field rules (CEL) -----------------------------------------------------


@st.composite
def rule_break(draw: st.DrawFn, kind: str, base: Obj) -> Malformed:
    obj = copy.deepcopy(base)
    spec = obj["spec"]
    if kind == "Workload":
        replicas = draw(st.integers(1, 4095))
        spec["replicas"], spec["minReplicas"] = replicas, draw(st.integers(replicas + 1, 4096))
        what = "minReplicas > replicas"
    elif kind == "Queue":
        choice = draw(st.sampled_from(["deserved>limit", "namespaces+selector", "parent=self"]))
        if choice == "deserved>limit":
            index = draw(st.integers(0, len(spec["resources"]) - 1))
            limit = draw(st.integers(0, 10**8 - 1))
            spec["resources"][index].update(
                limit=limit, deserved=draw(st.integers(limit + 1, 10**8))
            )
        elif choice == "namespaces+selector":
            spec["namespaces"] = ["team-a"]
            spec["namespaceSelector"] = draw(st.sampled_from([{}, {"matchLabels": {"team": "a"}}]))
        else:
            spec["parent"] = obj["metadata"]["name"]
        what = choice
    elif kind == "Site":
        choice = draw(
            st.sampled_from(["region-mismatch", "nodes-both", "nodes-neither", "selector-values"])
        )
        if choice == "region-mismatch":
            jurisdiction = draw(st.sampled_from(regions.JURISDICTIONS))
            foreign = [r for r, members in regions.REGIONS.items() if jurisdiction not in members]
            spec["jurisdiction"], spec["regions"] = jurisdiction, [draw(st.sampled_from(foreign))]
        elif choice == "nodes-both":
            spec["nodes"] = {
                "local": {"nodeSelector": {}},
                "member": {"kubeconfigSecretRef": {"name": "kc", "key": "config"}},
            }
        elif choice == "nodes-neither":
            spec["nodes"] = {}
        else:
            operator = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
            values: list[str] = [] if operator in ("In", "NotIn") else ["x"]
            requirement: Obj = {"key": "gpufleet.io/site", "operator": operator}
            # In/NotIn break with values missing or empty; Exists with any.
            send_empty: bool = draw(st.booleans())
            if values or send_empty:
                requirement["values"] = values
            spec["nodes"] = {"local": {"nodeSelector": {"matchExpressions": [requirement]}}}
        what = choice
    else:
        # GpuPool's only cross-field rule is about status.
        status = obj["status"] = copy.deepcopy(STATUSES["GpuPool"])
        total = draw(st.integers(0, 10**6))
        status["nodesTotal"], status["nodesReady"] = (
            total,
            draw(st.integers(total + 1, total + 10**6)),
        )
        return Malformed(kind, "status", obj, "nodesReady > nodesTotal")
    return Malformed(kind, "spec", obj, what)


@st.composite
def malformed(draw: st.DrawFn) -> Malformed:
    """One malformed object of any kind, spec or status side."""
    kind = draw(st.sampled_from(KIND_NAMES))
    base = copy.deepcopy(draw(st.sampled_from(BASES[kind])))
    base["metadata"]["name"] = "mal-" + draw(st.from_regex(r"\A[a-z0-9]{10}\Z"))
    how = draw(st.sampled_from(["spec", "spec", "status", "rule"]))
    if how == "rule":
        return draw(rule_break(kind, base))
    if how == "status":
        base["status"] = copy.deepcopy(STATUSES[kind])
        return draw(schema_break(kind, "status", base))
    return draw(schema_break(kind, "spec", base))
