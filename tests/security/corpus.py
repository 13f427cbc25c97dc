"""The hostile-template corpus (corpus.yaml) and the benign templates it is measured against."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpufleet.api.podtemplate import TemplatePolicy

CORPUS = Path(__file__).with_name("corpus.yaml")
IMAGE = "registry.k8s.io/pause:3.10"
RESTRICTED_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
    "capabilities": {"drop": ["ALL"]},
}


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # pss | api | gpufleet
    level: str
    path: str
    template: dict[str, Any]
    name: str = "hostile"

    @property
    def policy(self) -> TemplatePolicy:
        return TemplatePolicy(level=self.level)  # type: ignore[arg-type]


def _inflate(template: dict[str, Any], how: dict[str, int]) -> None:
    if "annotations" in how:
        template["metadata"]["annotations"] = {
            f"note-{i}": "x" * 30_000 for i in range(how["annotations"])
        }
    if "env" in how:
        template["spec"]["containers"][0]["env"] = [
            {"name": f"V{i}", "value": "y" * 1_000} for i in range(how["env"])
        ]


def load() -> list[Case]:
    cases = []
    for raw in yaml.safe_load(CORPUS.read_text()):
        template = copy.deepcopy(raw["template"])
        if "inflate" in raw:
            _inflate(template, raw["inflate"])
        cases.append(
            Case(
                id=raw["id"],
                kind=raw["kind"],
                level=raw["level"],
                path=raw["path"],
                template=template,
                name=raw.get("name", "hostile"),
            )
        )
    return cases


def benign(level: str = "baseline") -> dict[str, Any]:
    """A template every level allows at ``level``: what a careful team would write."""
    container: dict[str, Any] = {
        "name": "main",
        "image": IMAGE,
        "ports": [{"containerPort": 8080, "name": "http"}],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
    }
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "restartPolicy": "Never",
    }
    if level == "restricted":
        container["securityContext"] = copy.deepcopy(RESTRICTED_CONTEXT)
    return {"metadata": {"labels": {"team": "a"}}, "spec": spec}


def workload(namespace: str, name: str, queue: str, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gpufleet.io/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "queue": queue,
            "replicas": 1,
            "acceleratorsPerReplica": 1,
            "acceleratorClasses": ["nvidia-h100", "nvidia-h200"],
            "template": template,
        },
    }
