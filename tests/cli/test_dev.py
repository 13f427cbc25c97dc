"""`gpufleet dev ...` on fakes: what each command prints (table or JSON) and how it fails,
with no cluster started. The commands against real fleets: tests/dev."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cli.tables import rows
from gpufleet.cli import dev
from gpufleet.dev import bench, clusters, scale, throughput
from gpufleet.dev.inventory import ClusterInventory
from gpufleet.dev.tools import ToolsMissingError
from gpufleet.fleetfile import Fleet


def cluster(name: str, hub: bool, hollow: int = 0) -> clusters.Cluster:
    return clusters.Cluster(
        name=name,
        kwok_name=f"gpufleet-t-{name}",
        kubeconfig=Path(f"/s/t/{name}.kubeconfig"),
        server=f"https://127.0.0.1:{6443 if hub else 6444}",
        site=name,
        hub=hub,
        nodes=4,
        kubectl_path=Path("/bin/kubectl"),
        hollow=hollow,
    )


RUNNING = clusters.RunningFleet(
    name="t",
    source="fleet.yaml",
    clusters={"fra": cluster("fra", True), "osl": cluster("osl", False, hollow=2)},
)


def inventory(hollow: bool) -> list[ClusterInventory]:
    return [
        ClusterInventory(
            cluster="fra",
            site="onprem-fra",
            server="https://127.0.0.1:6443",
            kubeconfig="/s/t/fra.kubeconfig",
            nodes=4,
            nodes_ready=3,
            accelerators={"nvidia-h100": 16, "nvidia-h200": 16},
        ),
        ClusterInventory(
            cluster="osl",
            site="factory-osl",
            server="https://127.0.0.1:6444",
            kubeconfig="/s/t/osl.kubeconfig",
            nodes=2,
            nodes_ready=2,
            hollow=2 if hollow else 0,
            hollow_running=2 if hollow else 0,
            hollow_ready=1 if hollow else 0,
        ),
    ]


class FakePrometheus:
    url = "http://127.0.0.1:9"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    # Wide enough that no cell wraps; plain text (the runner's stdout is not a terminal).
    monkeypatch.setattr(dev, "out", Console(width=400, color_system=None))
    monkeypatch.setattr(dev, "console", Console(width=400, color_system=None, stderr=True))
    monkeypatch.setattr(clusters, "running_fleets", lambda: ["t"])
    # `dev up` starts a real Prometheus beside the fleet: not in these tests.
    monkeypatch.setattr(dev, "_start_prometheus", lambda name, targets: FakePrometheus())
    app = typer.Typer()
    dev.register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, ["dev", *args])


def test_status_shows_the_inventory_with_hollow_kubelets_when_there_are_any(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clusters, "load_running", lambda name: RUNNING if name == "t" else None)
    monkeypatch.setattr(dev, "fleet_inventory", lambda fleet: inventory(hollow=True))
    result = invoke(app, "status", "--name", "t")
    assert result.exit_code == 0, result.output
    assert rows(result.stdout, "fleet t") == [
        ["onprem-fra", "fra (hub)", "4 (3)", "0 (0, 0)", "16 × nvidia-h100", "https://127.0.0.1:6443"],
        ["", "", "", "", "16 × nvidia-h200", ""],
        ["factory-osl", "osl", "2 (2)", "2 (2, 1)", "-", "https://127.0.0.1:6444"],
    ]  # fmt: skip
    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "site", "cluster", "nodes (ready)", "hollow kubelets (running, ready)", "accelerators",
        "API server",
    ]  # fmt: skip
    assert "kubeconfigs: /s/t/fra.kubeconfig, /s/t/osl.kubeconfig" in result.stdout


def test_status_without_hollow_kubelets_has_no_hollow_column(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clusters, "load_running", lambda name: RUNNING)
    monkeypatch.setattr(dev, "fleet_inventory", lambda fleet: inventory(hollow=False))
    result = invoke(app, "status", "--name", "t")
    assert result.exit_code == 0, result.output
    assert rows(result.stdout, "fleet t")[2] == [
        "factory-osl", "osl", "2 (2)", "-", "https://127.0.0.1:6444",
    ]  # fmt: skip


def test_status_json_is_the_inventory(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clusters, "load_running", lambda name: RUNNING)
    monkeypatch.setattr(dev, "fleet_inventory", lambda fleet: inventory(hollow=True))
    result = invoke(app, "status", "--name", "t", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [inv.as_dict() for inv in inventory(hollow=True)]


def test_status_of_a_fleet_that_is_not_up_fails_naming_the_running_ones(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clusters, "load_running", lambda name: None)
    result = invoke(app, "status", "--name", "gone")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        "error: no fleet 'gone' is up; start one with 'gpufleet dev up' (running: ['t'])"
        in result.stderr
    )


def test_up_prints_the_running_fleet_as_json_with_its_seconds(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def up(fleet: Fleet, **kwargs: Any) -> clusters.RunningFleet:
        seen.update(kwargs, fleet=fleet.name)
        return RUNNING

    monkeypatch.setattr(clusters, "up", up)
    result = invoke(app, "up", "--name", "t", "--reuse", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert isinstance(printed.pop("seconds"), float)
    assert printed.pop("prometheus") == FakePrometheus.url
    assert printed == RUNNING.to_json()
    assert (seen["fleet"], seen["name"], seen["runtime"], seen["reuse"]) == (
        "dev",
        "t",
        "binary",
        True,
    )


def test_up_prints_the_inventory_and_how_to_reach_the_fleet(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clusters, "up", lambda fleet, **kwargs: RUNNING)
    monkeypatch.setattr(dev, "fleet_inventory", lambda fleet: inventory(hollow=False))
    result = invoke(app, "up", "--name", "t")
    assert result.exit_code == 0, result.output
    assert rows(result.stdout, "fleet t")[0][:3] == ["onprem-fra", "fra (hub)", "4 (3)"]
    assert "kubectl --kubeconfig /s/t/fra.kubeconfig get nodes" in result.stderr
    assert "gpufleet dev down --name t" in result.stderr


@pytest.mark.parametrize(
    "error", [ToolsMissingError("run make tools"), clusters.FleetError("port taken")]
)
def test_up_fails_with_the_tooling_s_message(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def up(fleet: Fleet, **kwargs: Any) -> clusters.RunningFleet:
        raise error

    monkeypatch.setattr(clusters, "up", up)
    result = invoke(app, "up", "--json")
    assert result.exit_code == 1
    assert f"error: {error}" in result.stderr
    assert result.stdout == ""


def test_up_refuses_a_bad_fleet_file(app: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclusters: 3\n")
    result = invoke(app, "up", str(bad))
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert result.stdout == ""


def test_down_all_stops_every_running_fleet(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clusters, "running_fleets", lambda: ["a", "b"])
    monkeypatch.setattr(clusters, "down", lambda name, progress: [f"{name}-1", f"{name}-2"])
    result = invoke(app, "down", "--all")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "fleet a: removed 2 cluster(s)",
        "fleet b: removed 2 cluster(s)",
    ]


NODES_RESULT = {
    "nodes": 10,
    "control_plane_start_seconds": 3.5,
    "create_nodes_seconds": 1.25,
    "nodes_ready_seconds": 2.0,
    "nodes_per_second": 8.0,
    "rss_mb": {"etcd": 50.0, "kube-apiserver": 300.5},
    "rss_total_mb": 350.5,
}
HOLLOW_RESULT = {
    "hollow_nodes": 3,
    "cores": 2,
    "start_to_ready_seconds": {"median": 4.5, "max": 6.0},
    "rss_mb_all_kubelets": 120.0,
    "loadavg_1m_after": 1.5,
}


def test_bench_nodes_table_and_json(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, bool]] = []

    def bench_nodes(nodes: int, *, keep: bool) -> dict[str, Any]:
        calls.append((nodes, keep))
        return NODES_RESULT

    monkeypatch.setattr(bench, "bench_nodes", bench_nodes)
    result = invoke(app, "bench", "--nodes", "10", "--keep")
    assert result.exit_code == 0, result.output
    assert rows(result.stdout, "one cluster, 10 fake 8-GPU nodes") == [
        ["control_plane_start_seconds", "3.5"],
        ["create_nodes_seconds", "1.25"],
        ["nodes_ready_seconds", "2.0"],
        ["nodes_per_second", "8.0"],
        ["rss_total_mb", "350.5"],
        ["rss_mb etcd", "50.0"],
        ["rss_mb kube-apiserver", "300.5"],
    ]
    assert json.loads(invoke(app, "bench", "--nodes", "10", "--json").stdout) == NODES_RESULT
    assert calls == [(10, True), (10, False)]


def test_bench_hollow_table_flattens_nested_measures(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, float, bool]] = []

    def bench_hollow(count: int, *, settle: float, keep: bool) -> dict[str, Any]:
        calls.append((count, settle, keep))
        return HOLLOW_RESULT

    monkeypatch.setattr(bench, "bench_hollow", bench_hollow)
    result = invoke(app, "bench", "--hollow", "3", "--settle", "5")
    assert result.exit_code == 0, result.output
    assert rows(result.stdout, "3 hollow kubelets on 2 cores") == [
        ["hollow_nodes", "3"],
        ["cores", "2"],
        ["start_to_ready_seconds median", "4.5"],
        ["start_to_ready_seconds max", "6.0"],
        ["rss_mb_all_kubelets", "120.0"],
        ["loadavg_1m_after", "1.5"],
    ]
    assert json.loads(invoke(app, "bench", "--hollow", "3", "--json").stdout) == HOLLOW_RESULT
    assert calls == [(3, 5.0, False), (3, 60.0, False)]


@pytest.mark.parametrize("args", [["--nodes", "10"], ["--hollow", "3"]])
def test_bench_fails_with_the_tooling_s_message(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    def missing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ToolsMissingError("kubemark is not built: run make tools")

    monkeypatch.setattr(bench, "bench_nodes", missing)
    monkeypatch.setattr(bench, "bench_hollow", missing)
    result = invoke(app, "bench", *args)
    assert result.exit_code == 1
    assert "error: kubemark is not built: run make tools" in result.stderr
    assert result.stdout == ""


THROUGHPUT_RESULT = {
    "api_server_ceiling": {"created_per_second": 200.0, "running_per_second": 150.0},
    "operator": {"admitted_per_second": 90.0, "running_per_second": 75.0},
    "ratio_running_vs_ceiling": 0.5,
}


def test_throughput_table_and_json(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throughput, "measure", lambda nodes, workloads, progress: THROUGHPUT_RESULT)
    result = invoke(app, "throughput", "--nodes", "5", "--workloads", "20")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "per second" in text
    assert rows(text, "20 single-pod workloads on 5 nodes") == [
        ["API server ceiling: created_per_second", "200.0"],
        ["API server ceiling: running_per_second", "150.0"],
        ["gpufleet: admitted_per_second", "90.0"],
        ["gpufleet: running_per_second", "75.0"],
        ["ratio (running/s vs ceiling)", "0.5"],
    ]
    assert json.loads(invoke(app, "throughput", "--json").stdout) == THROUGHPUT_RESULT


def test_throughput_fails_on_a_timeout(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    def late(nodes: int, workloads: int, progress: Any) -> dict[str, Any]:
        raise TimeoutError("timed out after 900s waiting for workloads running")

    monkeypatch.setattr(throughput, "measure", late)
    result = invoke(app, "throughput")
    assert result.exit_code == 1
    assert "error: timed out after 900s waiting for workloads running" in result.stderr


SCALE_RESULT = {
    "gpus": 80,
    "steady_cycles": 12,
    "steady_step_seconds_median": {"view": 0.001, "schedule": 0.02},
    "seconds_to_all_decided": None,
}


def test_scale_table_and_json(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def measure(gpus: int, workloads: int, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, gpus=gpus, workloads=workloads)
        return SCALE_RESULT

    monkeypatch.setattr(scale, "measure", measure)
    result = invoke(app, "scale", "--gpus", "80", "--workloads", "9", "--rate", "3")
    assert result.exit_code == 0, result.output
    assert rows(result.stdout, "9 workloads on 80 GPUs over three clusters") == [
        ["gpus", "80"],
        ["steady_cycles", "12"],
        ["steady_step_seconds_median", '{"view": 0.001, "schedule": 0.02}'],
        ["seconds_to_all_decided", "None"],
    ]
    assert (seen["gpus"], seen["workloads"], seen["rate"], seen["keep"]) == (80, 9, 3.0, False)
    assert json.loads(invoke(app, "scale", "--json").stdout) == SCALE_RESULT


def test_register_a_fleet_that_is_not_up_fails(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clusters, "load_running", lambda name: None)
    result = invoke(app, "register", "--name", "t")
    assert result.exit_code == 1
    assert "error: fleet 't' is not up; run 'gpufleet dev up' first" in result.stderr


def test_register_names_the_hub_and_namespace(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gpufleet.dev.register as register_module

    seen: list[tuple[str, str, bool]] = []
    monkeypatch.setattr(clusters, "load_running", lambda name: RUNNING)
    monkeypatch.setattr(
        register_module,
        "register",
        lambda fleet, running, namespace, sites: seen.append((running.name, namespace, sites)),
    )
    result = invoke(app, "register", "--namespace", "ops", "--no-sites")
    assert result.exit_code == 0, result.output
    assert seen == [("t", "ops", False)]
    assert "registered fleet t on hub fra (namespace ops)" in result.stderr
