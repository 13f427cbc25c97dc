"""Kubernetes label selectors, evaluated the way the API server does."""

from __future__ import annotations

from collections.abc import Mapping

from gpufleet.api.v1alpha1 import LabelSelector


def matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """An empty selector selects everything; None selects nothing."""
    if selector is None:
        return False
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        values = set(req.values or ())
        if req.operator == "In" and (not present or labels[req.key] not in values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def matches_map(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
