"""Building blocks shared by the gpufleet.io/v1alpha1 kinds.

Every rule is written once as a :class:`Rule` and enforced twice: as a CEL
``x-kubernetes-validations`` rule by the API server (through the generated
CRD) and as a Python check by the models, so a client that builds objects in
Python hears the same message the API server would give.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from gpufleet.api import regions
from gpufleet.api.quantity import NON_NEGATIVE_QUANTITY_PATTERN, QuantityError, parse_quantity
from gpufleet.api.v1alpha1.crdinfo import CrdInfo

GROUP = "gpufleet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "gpufleet"

# --- Rules ------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One validation rule, in CEL for the API server and in Python for clients.

    ``check`` mirrors a rule on a single object; ``check_update`` mirrors a
    transition rule (one that reads ``oldSelf``) and receives (old, new).
    """

    cel: str
    message: str
    check: Callable[[Any], bool] | None = None
    check_update: Callable[[Any, Any], bool] | None = None
    field_path: str | None = None

    def __post_init__(self) -> None:
        is_transition = "oldSelf" in self.cel
        if is_transition != (self.check_update is not None) or (
            is_transition and self.check is not None
        ):
            raise ValueError(f"rule {self.cel!r}: transition rules need check_update only")

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.check_update is not None:
            # A change that is not allowed at all reads "Forbidden", not "Invalid value".
            out["reason"] = "FieldValueForbidden"
        return out


class TransitionError(ValueError):
    """An update that a transition rule (e.g. immutability) forbids."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def _add_rules_to_schema(schema: dict[str, Any], cls: type) -> None:
    rules: tuple[Rule, ...] = getattr(cls, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.to_schema() for rule in rules]


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, strict like the API server."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        # The API server rejects unknown fields (kubectl's strict field validation)
        # and never coerces "8" into 8; neither do the models.
        extra="forbid",
        strict=True,
        json_schema_extra=_add_rules_to_schema,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).rules:
            if rule.check is not None and not rule.check(self):
                raise ValueError(rule.message)
        return self


def check_update(old: ApiModel, new: ApiModel) -> None:
    """Raise :class:`TransitionError` if ``old`` → ``new`` breaks a transition rule."""
    if type(old) is not type(new):
        raise TypeError(f"cannot compare a {type(old).__name__} with a {type(new).__name__}")
    broken = [
        rule.message
        for rule in type(new).rules
        if rule.check_update is not None and not rule.check_update(old, new)
    ]
    if broken:
        raise TransitionError(broken)


# --- Strings ----------------------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_NAME_PART = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
QUALIFIED_NAME_PATTERN = rf"^({_PREFIX}/)?{_NAME_PART}$"
EXTENDED_RESOURCE_PATTERN = rf"^{_PREFIX}/{_NAME_PART}$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
CAMEL_CASE_PATTERN = r"^[A-Z][A-Za-z0-9]*$"

DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
AcceleratorClass = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="Accelerator class in DNS-label form, e.g. nvidia-h100, aws-trainium2.",
    ),
]
LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=QUALIFIED_NAME_PATTERN)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]
Certification = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="A certification in DNS-label form, e.g. c5, iso27001, fedramp-high.",
    ),
]
Message = Annotated[str, Field(max_length=32768)]
Reason = Annotated[str, Field(min_length=1, max_length=1024, pattern=CAMEL_CASE_PATTERN)]


def _one_of(values: Iterable[str], what: str) -> Callable[[str], str]:
    """The Python mirror of an ``enum`` of strings."""
    allowed = frozenset(values)

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not {what}")
        return value

    return check


Jurisdiction = Annotated[
    StrictStr,
    AfterValidator(_one_of(regions.JURISDICTIONS, "an ISO 3166-1 alpha-2 country code")),
    WithJsonSchema({"type": "string", "enum": list(regions.JURISDICTIONS)}),
]
RegionName = Annotated[
    StrictStr,
    AfterValidator(
        _one_of(regions.REGION_NAMES, f"a known region ({', '.join(regions.REGION_NAMES)})")
    ),
    WithJsonSchema({"type": "string", "enum": list(regions.REGION_NAMES)}),
]

# --- Quantities and time ----------------------------------------------------


def _valid_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and len(value) > 64:
        raise ValueError("quantity must be at most 64 characters")
    try:
        parse_quantity(value)
    except QuantityError as exc:
        raise ValueError(str(exc)) from None
    return value


Quantity = Annotated[
    StrictInt | StrictStr,
    AfterValidator(_valid_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": NON_NEGATIVE_QUANTITY_PATTERN,
            "minimum": 0,
            "maxLength": 64,
        }
    ),
]
"""A non-negative Kubernetes quantity, kept as written ("8", 8, "512Gi")."""


def _rfc3339_text(value: object) -> object:
    # The API server stores times as RFC 3339 strings; refuse the numbers and
    # other forms pydantic's lax datetime parsing would otherwise accept.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and "T" in value:
        return value
    raise ValueError("must be an RFC 3339 date-time string such as 2026-01-31T12:00:00Z")


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    Field(strict=False),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "maxLength": 64,
            # kube-apiserver 1.37 skips the type check of a string with a
            # `format` when the value is a list (["x"] is stored as a time);
            # evaluating any CEL rule on it does check the type.
            "x-kubernetes-validations": [
                {
                    "rule": "type(self) == google.protobuf.Timestamp",
                    "message": "{field} must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z",
                }
            ],
        }
    ),
]

# --- Lists ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _BoundedList:
    """A list annotation: item-count bounds plus a Kubernetes list type."""

    max_items: int
    min_items: int = 0

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        # For `list[X] | None` these land beside the anyOf; crdgen folds them in.
        if self.min_items:
            out["minItems"] = self.min_items
        out["maxItems"] = self.max_items
        out.update(self.list_type())
        return out

    def _validate(self, items: list[Any] | None) -> list[Any] | None:
        if items is None:
            return None
        if not self.min_items <= len(items) <= self.max_items:
            raise ValueError(
                f"must have between {self.min_items} and {self.max_items} items, not {len(items)}"
            )
        self.check_unique(items)
        return items

    def list_type(self) -> dict[str, Any]:
        raise NotImplementedError

    def check_unique(self, items: list[Any]) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class ListMap(_BoundedList):
    """A list of objects that Kubernetes merges by ``keys``; two items with one key are refused."""

    keys: tuple[str, ...]

    def list_type(self) -> dict[str, Any]:
        return {
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": [to_camel(key) for key in self.keys],
        }

    def check_unique(self, items: list[Any]) -> None:
        seen: set[tuple[Any, ...]] = set()
        for item in items:
            key = tuple(getattr(item, name) for name in self.keys)
            if key in seen:
                shown = ", ".join(f"{to_camel(k)}={v}" for k, v in zip(self.keys, key, strict=True))
                raise ValueError(f"duplicate entries with {shown}")
            seen.add(key)


@dataclass(frozen=True)
class ListSet(_BoundedList):
    """A list of scalars that Kubernetes treats as a set: order kept, no duplicates."""

    def list_type(self) -> dict[str, Any]:
        return {"x-kubernetes-list-type": "set"}

    def check_unique(self, items: list[Any]) -> None:
        duplicates = sorted({str(item) for item in items if items.count(item) > 1})
        if duplicates:
            raise ValueError(f"duplicate values: {', '.join(duplicates)}")


# --- Shared objects ---------------------------------------------------------


class Condition(ApiModel):
    """A condition in the Kubernetes convention (metav1.Condition)."""

    type: Annotated[str, Field(min_length=1, max_length=316, pattern=QUALIFIED_NAME_PATTERN)]
    status: Literal["True", "False", "Unknown"]
    reason: Reason
    message: Message = ""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    last_transition_time: Timestamp


Conditions = Annotated[list[Condition], ListMap(("type",), max_items=32)]


class LabelSelectorRequirement(ApiModel):
    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: Annotated[list[LabelValue], Field(max_length=64)] | None = None

    rules = (
        Rule(
            cel="self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
            " : (!has(self.values) || size(self.values) == 0)",
            message="matchExpressions[].values must be non-empty for In and NotIn"
            " and empty for Exists and DoesNotExist",
            check=lambda r: bool(r.values) == (r.operator in ("In", "NotIn")),
        ),
    )


class LabelSelector(ApiModel):
    """A label selector; an empty selector selects everything."""

    match_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=64)] | None = None
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] | None = None


class ObjectMeta(BaseModel):
    """The parts of metadata gpufleet reads; the API server owns the rest."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int | None = None
    resource_version: str | None = None
    uid: str | None = None


class Resource(ApiModel):
    """Base of the top-level kinds."""

    # Names, scope and printer columns of the kind's CRD; every kind sets it.
    crd: ClassVar[CrdInfo]

    api_version: Literal["gpufleet.io/v1alpha1"] = "gpufleet.io/v1alpha1"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    def to_manifest(self) -> dict[str, Any]:
        """The object as the API server takes it (camelCase, unset fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)
