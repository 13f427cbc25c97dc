"""The chart README's metric table is the metric contract, not a stale copy of it."""

from __future__ import annotations

import re

from gpufleet.metrics import CATALOGUE

from .helm import CHART


def test_the_readme_lists_exactly_the_exported_metrics_with_type_and_labels() -> None:
    readme = (CHART / "README.md").read_text()
    rows = re.findall(r"^\| `(gpufleet_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|", readme, re.MULTILINE)
    documented = {
        name: (kind, tuple(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows
    }
    assert documented == {spec.name: (spec.type, spec.labels) for spec in CATALOGUE}
