"""A real Prometheus beside the dev fleet (item 6): it scrapes the operator while
workloads run, evaluates the chart's rules, answers every PromQL expression of the
chart's dashboard and rules, and is a history source for `gpufleet forecast`."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from chart.helm import CHART
from chart.test_dashboard_alerts_metrics import alert_queries, metric_names, strings_under
from gpufleet.cli import app
from gpufleet.dev import clusters
from gpufleet.dev import prometheus as devprom
from gpufleet.dev.clusters import Cluster, RunningFleet
from gpufleet.forecast.prometheus import read_prometheus
from metrics.test_operator_metrics_cluster import (  # the same operator and objects
    RunningOperator,
    fleet_objects,
    local_config,
    operator_namespace,
)

pytestmark = pytest.mark.cluster
__all__ = ["operator_namespace"]  # a fixture, used by name

# Grafana's template variables, as the dashboard's "All" selection and a short range.
GRAFANA_VARIABLES = {
    "${datasource}": "prometheus",
    "$__rate_interval": "1m",
    "$site": ".*",
    "$accelerator_class": ".*",
    "$queue": ".*",
}
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[^,]+),\s*(?P<label>\w+)\)$")


def dashboard_queries() -> list[str]:
    """Every query of the dashboard's panels and query variables (the data source
    variable's `prometheus` is a plugin type, not PromQL)."""
    dashboard = json.loads((CHART / "files" / "dashboards" / "gpufleet.json").read_text())
    variables = dashboard.get("templating", {}).get("list", [])
    dashboard["templating"]["list"] = [v for v in variables if v.get("type") != "datasource"]
    return list(strings_under(dashboard, {"expr", "query", "definition"}))


def promql(text: str) -> str:
    """A dashboard query as Prometheus receives it: variables substituted, and Grafana's
    `label_values(metric, label)` as the series query it stands for."""
    for name, value in GRAFANA_VARIABLES.items():
        text = text.replace(name, value)
    match = LABEL_VALUES.match(text.strip())
    return match.group("metric") if match else text


def api(url: str, path: str, **params: str) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=30) as reply:
        return json.load(reply)


def instant(url: str, expr: str) -> dict[str, Any]:
    """The API's answer, an error included (a 400 carries the parse error as JSON)."""
    try:
        answer: dict[str, Any] = api(url, "/api/v1/query", query=expr)
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read())
    return answer


def has_data(url: str, metric: str) -> bool:
    return bool(instant(url, f"count({metric})").get("data", {}).get("result"))


@pytest.fixture
def workload_running(
    dev_fleet: RunningFleet, hub: Cluster, namespace: str, operator_namespace: str
) -> Iterator[tuple[str, str]]:
    """The operator (metrics on a free port), a queue with placed and waiting H100
    workloads: (queue, host:port)."""
    suffix = namespace.removeprefix("t-")
    queue = f"prom-{suffix}"
    objects = fleet_objects(queue, namespace, "two-by-eight")
    # And one of 64: with both, the queue would be past its limit of 64, so one of them
    # waits and the pending series (and the oldest-pending alert's metric) have data too.
    waiting = json.loads(json.dumps(objects[1]))
    waiting["metadata"]["name"] = "eight-by-eight"
    waiting["spec"].update(replicas=8, minReplicas=8)
    objects.append(waiting)
    hub.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    try:
        with RunningOperator(local_config(operator_namespace, f"prom-{suffix}", hub)) as running:
            assert running.operator.server is not None
            yield queue, f"127.0.0.1:{running.operator.server.port}"
    finally:
        hub.kubectl(
            "delete", "-f", "-", "--wait=false", input=yaml.safe_dump_all(objects), check=False
        )


def wait_for(url: str, expr: str, what: str, timeout: float = 180) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result: list[Any] = instant(url, expr).get("data", {}).get("result", [])
        if result:
            return result
        time.sleep(2)
    seen = instant(url, '{__name__=~"gpufleet_queue_.*_accelerators"}')
    pytest.fail(f"prometheus never had {what} within {timeout:.0f} s ({expr}); it has {seen}")


def dev_up_prometheus(fleet_name: str, target: str) -> str:
    """`gpufleet dev up --reuse` on the running fleet starts (or finds) its Prometheus,
    scraping `target`; its URL."""
    result = CliRunner().invoke(
        app, ["dev", "up", "--reuse", "--name", fleet_name, "--scrape", target, "--json"]
    )
    assert result.exit_code == 0, result.output
    url: str = json.loads(result.stdout[result.stdout.index("{") :])["prometheus"]
    return url


def test_dev_up_starts_prometheus_that_answers_every_dashboard_and_rule_expression(
    dev_fleet: RunningFleet, workload_running: tuple[str, str]
) -> None:
    queue, target = workload_running
    url = dev_up_prometheus(dev_fleet.name, target)
    assert url.startswith("http://127.0.0.1:")
    where = devprom.directory(clusters.state_dir(), dev_fleet.name)
    assert devprom.find(where) is not None

    # Three scrapes of allocated and of pending accelerators (one workload fits under the
    # limit, the other waits): rates over them are defined.
    for metric in ("allocated", "pending"):
        series = f'gpufleet_queue_{metric}_accelerators{{queue="{queue}"}} > 0'
        wait_for(url, f"count_over_time(({series})[1m:5s]) >= 3", f"3 scrapes of {series}")
    # Rules are evaluated every 5 s: wait for one evaluation after the data arrived.
    groups = api(url, "/api/v1/rules")["data"]["groups"]
    evaluated_after = time.time()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        groups = api(url, "/api/v1/rules")["data"]["groups"]
        stamps = [r["lastEvaluation"] for g in groups for r in g["rules"]]
        if stamps and all(_epoch(s) > evaluated_after for s in stamps):
            break
        time.sleep(1)
    else:
        pytest.fail(f"prometheus did not evaluate every rule within 60 s: {groups}")
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(alert_queries()), "prometheus did not load every chart rule"
    assert [r["name"] for r in rules if r["health"] != "ok"] == [], rules

    failures, empty = [], []
    for source, expr in [
        *(("dashboard", promql(q)) for q in dashboard_queries()),
        *(("rule", q) for q in alert_queries()),
    ]:
        answer = instant(url, expr)
        if answer.get("status") != "success":
            failures.append((source, expr, answer.get("error")))
            continue
        names = metric_names([expr])
        # Alert expressions are conditions (empty while nothing is wrong): each metric
        # they read must have data. Dashboard queries must show data when theirs have it.
        if source == "rule":
            empty += [(source, expr, n) for n in sorted(names) if not has_data(url, n)]
        elif all(has_data(url, n) for n in names) and not answer["data"]["result"]:
            empty.append((source, expr, "no result"))
    assert failures == [], "\n".join(map(str, failures))
    assert empty == [], "\n".join(map(str, empty))


def test_forecast_reads_its_history_from_the_dev_prometheus(
    dev_fleet: RunningFleet, workload_running: tuple[str, str]
) -> None:
    queue, target = workload_running
    url = dev_up_prometheus(dev_fleet.name, target)
    wait_for(url, f'gpufleet_queue_allocated_accelerators{{queue="{queue}"}} > 0', "allocation")
    # Up to the current hour, however young: it is evaluated at its end, in the future.
    end = int(time.time())
    history = read_prometheus(url, end - 2 * 3600, end)
    ours = [k for k, key in enumerate(history.keys) if key.queue == queue]
    h100 = [k for k in ours if history.keys[k].accelerator_class == "nvidia-h100"]
    assert {history.keys[k].site for k in h100} == {"onprem-fra"}  # the class's one site
    assert history.allocated[h100, -1].sum() > 0
    assert history.pending[h100, -1].sum() > 0
    # The command reads whole hours only (the current one is not over): a Prometheus
    # minutes old has none yet, and the command says so instead of forecasting nothing.
    result = CliRunner().invoke(app, ["forecast", "--prometheus", url, "--days-back", "1"])
    assert result.exit_code != 0
    assert "no gpufleet_pool_capacity_accelerators series in the range" in result.output


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
