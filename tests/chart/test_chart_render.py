"""helm lint and helm template over the default values and the ci/ matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helm import (
    CHART,
    MONITORING_APIS,
    VALUES_MATRIX,
    Doc,
    helm,
    of_kind,
    one,
    render,
    value_args,
)

pytestmark = pytest.mark.usefixtures("needs_helm")

MATRIX = [pytest.param((), id="defaults")] + [
    pytest.param((path,), id=path.stem) for path in VALUES_MATRIX
]


def test_the_matrix_has_values_files() -> None:
    assert len(VALUES_MATRIX) >= 3


@pytest.mark.parametrize("values", MATRIX)
def test_helm_lint_passes(values: tuple[Path, ...]) -> None:
    result = helm("lint", "--strict", str(CHART), *value_args(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", MATRIX)
def test_every_rendered_object_is_labelled_and_namespaced_correctly(
    values: tuple[Path, ...],
) -> None:
    docs = render(values=values, namespace="gpu-ops")
    assert docs
    cluster_scoped = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for doc in docs:
        meta = doc["metadata"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "gpufleet", meta["name"]
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in meta, meta["name"]
        elif doc["kind"] != "ConfigMap":  # the dashboard may go to Grafana's namespace
            assert meta["namespace"] == "gpu-ops", meta["name"]


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_the_pod_meets_pod_security_restricted() -> None:
    spec = pod_spec(render())
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert all(set(v) <= {"name", "emptyDir"} for v in spec["volumes"])
    assert "hostNetwork" not in spec
    assert "hostPID" not in spec


def test_tmp_is_a_writable_empty_dir() -> None:
    spec = pod_spec(render())
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_probes_and_service_use_the_metrics_port() -> None:
    docs = render(sets=["metrics.port=9191"])
    (container,) = pod_spec(docs)["containers"]
    assert container["ports"] == [
        {"name": "http-metrics", "containerPort": 9191, "protocol": "TCP"}
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert "--metrics-port=9191" in container["args"]
    # Bound to the pod's addresses: the kubelet probes the pod IP, not its loopback.
    assert "--metrics-host=0.0.0.0" in container["args"]
    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["port"] == 9191
    assert service["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]


def test_the_image_is_the_app_version_unless_pinned() -> None:
    (container,) = pod_spec(render())["containers"]
    assert container["image"] == "gpufleet/gpufleet:0.1.0"
    digest = "sha256:" + "a" * 64
    (pinned,) = pod_spec(render(sets=[f"image.digest={digest}"]))["containers"]
    assert pinned["image"] == f"gpufleet/gpufleet@{digest}"


def test_operator_disabled_renders_no_deployment_but_keeps_the_rest() -> None:
    docs = render(sets=["operator.enabled=false"])
    assert not of_kind(docs, "Deployment")
    assert of_kind(docs, "ClusterRole")
    assert of_kind(docs, "Service")


@pytest.mark.parametrize(
    ("sets", "apis", "expected"),
    [
        ((), (), False),
        ((), MONITORING_APIS, True),
        (("metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"), (), True),
        (
            ("metrics.serviceMonitor.enabled=false", "metrics.prometheusRule.enabled=false"),
            MONITORING_APIS,
            False,
        ),
    ],
    ids=["auto-without-api", "auto-with-api", "forced-on", "forced-off"],
)
def test_monitoring_objects_follow_the_api_or_the_switch(
    sets: tuple[str, ...], apis: tuple[str, ...], expected: bool
) -> None:
    docs = render(sets=sets, api_versions=apis)
    assert bool(of_kind(docs, "ServiceMonitor")) is expected
    assert bool(of_kind(docs, "PrometheusRule")) is expected


def test_alerts_cover_what_operators_must_hear_about() -> None:
    docs = render(api_versions=MONITORING_APIS)
    rules = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "GpufleetSiteDisconnected",
        "GpufleetQueueBelowDeserved",
        "GpufleetWorkloadPendingTooLong",
        "GpufleetOperatorDown",
        "GpufleetSchedulingLoopStalled",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        # Scoped to this release's target, so two installs never page for each other.
        assert 'job="fleet-gpufleet", namespace="gpufleet-system"' in rule["expr"]


def test_alert_thresholds_come_from_values() -> None:
    docs = render(
        api_versions=MONITORING_APIS,
        sets=[
            "metrics.prometheusRule.alerts.workloadPendingTooLong.thresholdSeconds=900",
            "metrics.prometheusRule.alerts.siteDisconnected.for=2m",
            "metrics.prometheusRule.alerts.operatorDown.enabled=false",
        ],
    )
    rules = {r["alert"]: r for r in one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]}
    assert rules["GpufleetWorkloadPendingTooLong"]["expr"].endswith("> 900")
    assert rules["GpufleetSiteDisconnected"]["for"] == "2m"
    assert "GpufleetOperatorDown" not in rules


def test_the_dashboard_config_map_is_labelled_for_the_grafana_sidecar() -> None:
    docs = render(sets=["metrics.dashboard.namespace=monitoring"])
    (cm,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "gpufleet"
    shipped = json.loads((CHART / "files" / "dashboards" / "gpufleet.json").read_text())
    assert json.loads(cm["data"]["gpufleet.json"]) == shipped


@pytest.mark.parametrize(
    ("sets", "field"),
    [
        (["operator.replicas=-1"], "/operator/replicas"),
        (["metrics.serviceMonitor.enabled=maybe"], "/metrics/serviceMonitor/enabled"),
        (["metrics.port=80"], "/metrics/port"),
        (["image.digest=latest"], "/image/digest"),
        (["metrics.prometheusRule.alerts.siteDisconnected.for=5 minutes"], "for"),
        (["operatorr.enabled=true"], "operatorr"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(sets: list[str], field: str) -> None:
    result = helm("template", "x", str(CHART), *value_args(sets=sets), check=False)
    assert result.returncode != 0
    assert field in result.stderr


def test_a_missing_service_account_name_is_explained() -> None:
    result = helm("template", "x", str(CHART), "--set", "serviceAccount.create=false", check=False)
    assert result.returncode != 0
    assert "serviceAccount.name is required when serviceAccount.create is false" in result.stderr


def renders_operator(values: tuple[Path, ...]) -> bool:
    """What the values files ask for: the operator's Deployment in operator mode, unless
    operator.enabled is false (read from the files, not from what the chart renders)."""
    merged: Doc = {}
    for path in values:
        doc = yaml.safe_load(path.read_text()) or {}
        merged = {
            **merged,
            **doc,
            "operator": {**merged.get("operator", {}), **doc.get("operator", {})},
        }
    return bool(
        merged.get("mode", "operator") == "operator"
        and merged.get("operator", {}).get("enabled", True)
    )


def test_most_of_the_matrix_renders_the_operator() -> None:
    """The container-args test below checks only these; it must check some."""
    assert sum(renders_operator(p.values[0]) for p in MATRIX) >= 3


@pytest.mark.parametrize("values", MATRIX)
def test_the_container_args_are_ones_gpufleet_run_accepts(values: tuple[Path, ...]) -> None:
    import typer.main

    from gpufleet.cli import app

    deployments = [
        d
        for d in of_kind(render(values=values, sets=["operator.logLevel=debug"]), "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    if not renders_operator(values):
        # Agent mode and operator.enabled=false: no operator (test_chart_agent covers the agent).
        assert not deployments
        return
    (deployment,) = deployments
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command: Any = typer.main.get_command(app)
    subcommand, *args = container["args"]
    run = command.commands[subcommand]
    # Parsing checks every option and its type without starting the operator; an
    # unknown option raises.
    params = run.make_context(subcommand, list(args)).params
    assert params["metrics_host"] == "0.0.0.0"
    assert params["verbose"] is True
