"""The alert rules are valid PromQL and fire when they should, checked by promtool's own
rule unit tests on synthetic series (promtool is optional: built from the Go module proxy
with `go install github.com/prometheus/prometheus/cmd/promtool@latest`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpufleet.dev.tools import bin_dir

from .helm import MONITORING_APIS, one, render

pytestmark = pytest.mark.usefixtures("needs_helm")

TARGET = 'job="fleet-gpufleet", namespace="gpufleet-system"'


def promtool() -> Path:
    for candidate in (bin_dir() / "promtool", shutil.which("promtool")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    reason = "promtool is missing: run 'make tools' (it builds promtool into the tool cache)"
    if os.environ.get("GPUFLEET_REQUIRE_CLUSTER") == "1" or os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = one(render(api_versions=MONITORING_APIS), "PrometheusRule")[
        "spec"
    ]["groups"]
    return groups


def run(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups()}))
    result = run(promtool(), "check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    matchers = ", ".join([TARGET, *(f'{k}="{v}"' for k, v in labels.items())])
    return {"series": f"{name}{{{matchers}}}", "values": values}


def alert(name: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


TARGET_LABELS = {"job": "fleet-gpufleet", "namespace": "gpufleet-system"}

UNIT_TESTS: list[dict[str, Any]] = [
    {
        "interval": "1m",
        "input_series": [
            series("gpufleet_site_connection_state", "1 1 0x20", site="muc", state="Connected"),
            series("gpufleet_site_connection_state", "1x22", site="fra", state="Connected"),
        ],
        "alert_rule_test": [
            alert("GpufleetSiteDisconnected", "4m"),  # cut off 2m ago, for: 5m
            alert("GpufleetSiteDisconnected", "10m", {"site": "muc", "severity": "critical"}),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            series(
                "gpufleet_queue_allocated_accelerators",
                "8x60",
                queue="nlp",
                accelerator_class="h100",
            ),
            series(
                "gpufleet_queue_deserved_accelerators",
                "16x60",
                queue="nlp",
                accelerator_class="h100",
            ),
            series(
                "gpufleet_queue_pending_accelerators",
                "32x60",
                queue="nlp",
                accelerator_class="h100",
            ),
            # Below deserved but asking for nothing more: not held back.
            series(
                "gpufleet_queue_allocated_accelerators",
                "4x60",
                queue="cv",
                accelerator_class="h100",
            ),
            series(
                "gpufleet_queue_deserved_accelerators",
                "16x60",
                queue="cv",
                accelerator_class="h100",
            ),
            series(
                "gpufleet_queue_pending_accelerators", "0x60", queue="cv", accelerator_class="h100"
            ),
        ],
        "alert_rule_test": [
            alert("GpufleetQueueBelowDeserved", "20m"),
            alert(
                "GpufleetQueueBelowDeserved",
                "40m",
                {
                    **TARGET_LABELS,
                    "queue": "nlp",
                    "accelerator_class": "h100",
                    "severity": "warning",
                },
            ),
        ],
    },
    {
        "interval": "1m",
        # Pending since t=0 (promtool's clock starts at the Unix epoch).
        "input_series": [
            series("gpufleet_queue_oldest_pending_timestamp_seconds", "0x120", queue="nlp")
        ],
        "alert_rule_test": [
            alert("GpufleetWorkloadPendingTooLong", "50m"),
            alert(
                "GpufleetWorkloadPendingTooLong",
                "70m",
                {**TARGET_LABELS, "queue": "nlp", "severity": "warning"},
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [series("up", "1 1 0x20", instance="10.0.0.7:8080")],
        "alert_rule_test": [
            alert("GpufleetOperatorDown", "3m"),
            alert(
                "GpufleetOperatorDown",
                "10m",
                {**TARGET_LABELS, "instance": "10.0.0.7:8080", "severity": "critical"},
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # A healthy loop stamps every minute; a stalled one stopped at t=2m.
            series("gpufleet_scheduling_last_cycle_timestamp_seconds", "0+60x20", pod="ok"),
            series("process_start_time_seconds", "0x20", pod="ok"),
            series("gpufleet_scheduling_last_cycle_timestamp_seconds", "0 60 120x18", pod="stuck"),
            series("process_start_time_seconds", "0x20", pod="stuck"),
            # Restarted at t=5m, no cycle yet: counted from the start, not from t=0.
            series("gpufleet_scheduling_last_cycle_timestamp_seconds", "0x20", pod="fresh"),
            series("process_start_time_seconds", "300x20", pod="fresh"),
            # A standby runs no scheduling cycle of its own: it is not stalled.
            series("gpufleet_scheduling_last_cycle_timestamp_seconds", "0x20", pod="standby"),
            series("process_start_time_seconds", "0x20", pod="standby"),
            *(
                series("gpufleet_leader", "1x20", pod=pod, identity=f"{pod}_1")
                for pod in ("ok", "stuck", "fresh")
            ),
            series("gpufleet_leader", "0x20", pod="standby", identity="standby_1"),
        ],
        "alert_rule_test": [
            alert(
                "GpufleetSchedulingLoopStalled",
                "10m",
                {**TARGET_LABELS, "pod": "stuck", "severity": "critical"},
            ),
        ],
    },
]


def test_each_alert_fires_when_it_should_and_not_before(tmp_path: Path) -> None:
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # their wording is not what this test is about
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": UNIT_TESTS}, sort_keys=False)
    )
    result = run(promtool(), "test", "rules", str(tmp_path / "tests.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
