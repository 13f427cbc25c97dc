"""The dev fleet's Prometheus: started bound to 127.0.0.1 with the chart's rules loaded,
stopped leaving no process (needs the binary from `make tools`)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from gpufleet.dev import prometheus
from gpufleet.dev.tools import bin_dir


def binary(name: str) -> Path:
    path = bin_dir() / name
    if not path.exists():
        reason = f"{name} is missing: run 'make tools'"
        if os.environ.get("GPUFLEET_REQUIRE_CLUSTER") == "1" or os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def test_starts_on_localhost_with_the_chart_rules_and_stops_leaving_no_process(
    tmp_path: Path,
) -> None:
    groups = prometheus.chart_rule_groups(binary("helm"))
    running = prometheus.start(binary("prometheus"), tmp_path, groups, ["127.0.0.1:9"])
    try:
        assert running.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{running.url}/api/v1/rules", timeout=10) as reply:
            loaded = json.load(reply)["data"]["groups"]
        assert [r["name"] for g in loaded for r in g["rules"]] == [
            r.get("alert") or r.get("record") for g in groups for r in g["rules"]
        ]
        # A second start finds the running one instead of starting another.
        assert prometheus.start(binary("prometheus"), tmp_path, groups) == running
    finally:
        assert prometheus.stop(tmp_path)
    assert not Path(f"/proc/{running.pid}").exists()
    assert prometheus.find(tmp_path) is None
    assert not prometheus.stop(tmp_path)  # nothing left to stop
