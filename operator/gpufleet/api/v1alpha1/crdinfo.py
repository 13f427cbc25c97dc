"""What a CRD says beyond its schema: names, scope and `kubectl get` columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["string", "integer", "number", "boolean", "date"]


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: ColumnType
    json_path: str
    description: str = ""
    # Priority 0 columns show in `kubectl get`; higher ones only with -o wide.
    priority: int = 0

    def to_crd(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


@dataclass(frozen=True)
class CrdInfo:
    plural: str
    scope: Literal["Cluster", "Namespaced"]
    short_names: tuple[str, ...] = ()
    columns: tuple[PrinterColumn, ...] = field(default=())
