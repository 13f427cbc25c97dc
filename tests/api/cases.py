"""One case per validation rule: a valid example with that rule broken.

Used twice: against a real API server (test_validation_cluster.py) and
against the models (test_models.py); both must refuse and name the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.builders import Obj, first_example, unique


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    mutate: Callable[[Obj], None]
    field: str  # how the API server names the field (must appear in its message)
    python_field: str | None = None  # how pydantic names it, if not derivable

    @property
    def expected_in_python(self) -> str:
        if self.python_field is not None:
            return self.python_field
        return re.sub(r"\[(\d+)\]", r".\1", self.field)


def setter(path: str, value: Any) -> Callable[[Obj], None]:
    """Set a dotted path ("spec.resources.0.deserved") in an object."""

    def mutate(obj: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def deleter(path: str) -> Callable[[Obj], None]:
    def mutate(obj: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


def both(*mutations: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def mutate(obj: Obj) -> None:
        for mutation in mutations:
            mutation(obj)

    return mutate


def _duplicate_resource(obj: Obj) -> None:
    obj["spec"]["resources"].append(dict(obj["spec"]["resources"][0]))


def _self_parent(obj: Obj) -> None:
    obj["spec"]["parent"] = obj["metadata"]["name"]


CASES = [
    # Quantities are never negative.
    Case("workload-cpu-negative", "Workload", setter("spec.cpu", -1), "spec.cpu"),
    Case("workload-memory-negative", "Workload", setter("spec.memory", "-5Gi"), "spec.memory"),
    Case("workload-memory-not-quantity", "Workload", setter("spec.memory", "lots"), "spec.memory"),
    Case("workload-replicas-zero", "Workload", setter("spec.replicas", 0), "spec.replicas"),
    Case(
        "workload-accelerators-zero",
        "Workload",
        setter("spec.acceleratorsPerReplica", 0),
        "spec.acceleratorsPerReplica",
    ),
    Case(
        "workload-max-runtime-zero",
        "Workload",
        setter("spec.maxRuntimeSeconds", 0),
        "spec.maxRuntimeSeconds",
    ),
    Case("site-power-negative", "Site", setter("spec.powerBudgetKw", -1), "spec.powerBudgetKw"),
    Case(
        "pool-watts-negative",
        "GpuPool",
        setter("spec.wattsPerAccelerator", -700),
        "spec.wattsPerAccelerator",
    ),
    Case(
        "pool-cost-negative",
        "GpuPool",
        setter("spec.costPerAcceleratorHour", -0.5),
        "spec.costPerAcceleratorHour",
    ),
    Case(
        "queue-deserved-negative",
        "Queue",
        setter("spec.resources.0.deserved", -1),
        "spec.resources[0].deserved",
    ),
    Case(
        "queue-limit-negative",
        "Queue",
        setter("spec.resources.0.limit", -1),
        "spec.resources[0].limit",
    ),
    Case(
        "queue-weight-negative",
        "Queue",
        setter("spec.resources.0.overQuotaWeight", -1),
        "spec.resources[0].overQuotaWeight",
    ),
    Case(
        "queue-min-runtime-negative",
        "Queue",
        setter("spec.preemption.minRuntimeSeconds", -60),
        "spec.preemption.minRuntimeSeconds",
    ),
    # deserved <= limit, minReplicas <= replicas.
    Case(
        "queue-deserved-above-limit",
        "Queue",
        both(setter("spec.resources.0.deserved", 200), setter("spec.resources.0.limit", 100)),
        "spec.resources[].deserved must be <= spec.resources[].limit",
    ),
    Case(
        "workload-min-replicas-above-replicas",
        "Workload",
        both(setter("spec.replicas", 2), setter("spec.minReplicas", 3)),
        "spec.minReplicas must be <= spec.replicas",
    ),
    # Residency lists hold ISO 3166-1 alpha-2 codes or known region names.
    Case(
        "workload-residency-unknown-code",
        "Workload",
        setter("spec.residency", {"jurisdictions": ["XX"]}),
        "spec.residency.jurisdictions[0]",
    ),
    Case(
        "workload-residency-lowercase-code",
        "Workload",
        setter("spec.residency", {"jurisdictions": ["de"]}),
        "spec.residency.jurisdictions[0]",
    ),
    Case(
        "workload-residency-unknown-region",
        "Workload",
        setter("spec.residency", {"regions": ["MARS"]}),
        "spec.residency.regions[0]",
    ),
    Case(
        "queue-jurisdiction-not-iso",
        "Queue",
        setter("spec.allowedJurisdictions", ["UK"]),
        "spec.allowedJurisdictions[0]",
    ),
    Case(
        "site-jurisdiction-region-name",
        "Site",
        setter("spec.jurisdiction", "EU"),
        "spec.jurisdiction",
    ),
    Case(
        "site-region-without-its-jurisdiction",
        "Site",
        both(setter("spec.jurisdiction", "NO"), setter("spec.regions", ["EEA", "EU"])),
        "spec.regions must only name regions that contain spec.jurisdiction",
    ),
    # Accelerator class names are DNS labels.
    Case(
        "workload-class-uppercase",
        "Workload",
        setter("spec.acceleratorClasses", ["NVIDIA_H100"]),
        "spec.acceleratorClasses[0]",
    ),
    Case(
        "pool-class-with-dot",
        "GpuPool",
        setter("spec.acceleratorClass", "nvidia.h100"),
        "spec.acceleratorClass",
    ),
    Case(
        "queue-class-leading-dash",
        "Queue",
        setter("spec.resources.0.acceleratorClass", "-h100"),
        "spec.resources[0].acceleratorClass",
    ),
    Case(
        "pool-class-too-long",
        "GpuPool",
        setter("spec.acceleratorClass", "a" * 64),
        "spec.acceleratorClass",
    ),
    # Structure: one of, exclusive, lists, enums, unknown fields.
    Case(
        "site-nodes-local-and-member",
        "Site",
        setter(
            "spec.nodes",
            {
                "local": {"nodeSelector": {}},
                "member": {"kubeconfigSecretRef": {"name": "s", "key": "k"}},
            },
        ),
        "spec.nodes must set exactly one of local or member",
    ),
    Case(
        "site-nodes-neither",
        "Site",
        setter("spec.nodes", {}),
        "spec.nodes must set exactly one of local or member",
    ),
    Case("site-type-unknown", "Site", setter("spec.type", "Basement"), "spec.type"),
    Case(
        "queue-namespaces-and-selector",
        "Queue",
        setter("spec.namespaceSelector", {"matchLabels": {"team": "x"}}),
        "spec.namespaces and spec.namespaceSelector are mutually exclusive",
    ),
    Case(
        "queue-parent-itself",
        "Queue",
        _self_parent,
        "spec.parent must not name the queue itself",
    ),
    Case(
        "queue-duplicate-class",
        "Queue",
        _duplicate_resource,
        "spec.resources[2]",
        python_field="spec.resources",
    ),
    Case(
        "workload-duplicate-class",
        "Workload",
        setter("spec.acceleratorClasses", ["nvidia-h100", "nvidia-h100"]),
        "spec.acceleratorClasses[1]",
        python_field="spec.acceleratorClasses",
    ),
    Case(
        "workload-no-class",
        "Workload",
        setter("spec.acceleratorClasses", []),
        "spec.acceleratorClasses",
    ),
    Case(
        "workload-on-site-loss-unknown",
        "Workload",
        setter("spec.onSiteLoss", "Panic"),
        "spec.onSiteLoss",
    ),
    Case("workload-queue-missing", "Workload", deleter("spec.queue"), "spec.queue"),
    Case("workload-unknown-field", "Workload", setter("spec.gpus", 8), "spec.gpus"),
    Case(
        "pool-node-selector-bad-key",
        "GpuPool",
        setter("spec.nodeSelector", {"bad key!": "x"}),
        "spec.nodeSelector keys",
        python_field="spec.nodeSelector",
    ),
    Case(
        "pool-resource-without-domain",
        "GpuPool",
        setter("spec.resourceName", "gpu"),
        "spec.resourceName",
    ),
    Case(
        "site-selector-in-without-values",
        "Site",
        setter(
            "spec.nodes.local.nodeSelector",
            {"matchExpressions": [{"key": "gpufleet.io/site", "operator": "In"}]},
        ),
        "matchExpressions[].values must be non-empty for In and NotIn",
    ),
    Case(
        "site-certification-uppercase",
        "Site",
        setter("spec.certifications", ["ISO27001"]),
        "spec.certifications[0]",
    ),
]


def base(kind: str, namespace: str) -> Obj:
    """A valid object of ``kind`` with a fresh name."""
    # The team queue sets every field a case may break (namespaces, preemption).
    obj = first_example(kind, "vision" if kind == "Queue" else None)
    obj["metadata"]["name"] = unique(kind.lower())
    if kind == "Workload":
        obj["metadata"]["namespace"] = namespace
    return obj
