"""The API's kinds as the clients need them: name, plural, scope and the cache key of an object.

Derived once from the models' CRD information, so the writer, the handlers and
the operator's lists never spell out their own tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpufleet.api.v1alpha1.common import Resource


@dataclass(frozen=True)
class Kind:
    name: str
    plural: str
    namespaced: bool

    def key(self, metadata: Mapping[str, Any]) -> str:
        """`namespace/name` for a namespaced kind, `name` otherwise (the cache's key)."""
        name = str(metadata.get("name"))
        return f"{metadata.get('namespace')}/{name}" if self.namespaced else name


def kinds_of(models: tuple[type[Resource], ...]) -> dict[str, Kind]:
    """Kind name → its client facts, in the models' order."""
    out: dict[str, Kind] = {}
    for model in models:
        info = model.crd
        out[model.__name__] = Kind(model.__name__, info.plural, info.scope == "Namespaced")
    return out
