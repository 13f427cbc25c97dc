"""The fill-to-saturation experiment and the `simulate` / `frag` commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from gpufleet.cli.simulate import register
from gpufleet.sim.frag import fill_experiment
from gpufleet.sim.policies.registry import make
from gpufleet.sim.report import frag_markdown
from gpufleet.sim.tenants import default_queues
from sim.builders import job, one_site


def test_fill_leaves_the_gpus_no_pod_can_use_unallocated() -> None:
    # Two 4-GPU nodes, 3-GPU pods: after two pods each node has 1 GPU left that
    # no 3-GPU pod can use, at 100% asked (9 GPUs) and beyond.
    pods = [job(0, 0, 1, 3)]
    policies = make(["gpufleet", "fifo-first-fit", "best-fit", "kueue-like"], pods)
    report = fill_experiment(pods, one_site(4, 4), default_queues(2), policies, (1.0, 1.3))
    assert [lv.requested_gpus for lv in report.levels] == [9, 12]
    for level in report.levels:
        assert level.unallocated == {p.name: 2 for p in policies}
    # Evictions are reported per policy: none here (no pod runs its minimum runtime).
    assert report.evictions == {p.name: 0 for p in policies}
    assert "| evictions |  | 0 | 0 | 0 | 0 |" in frag_markdown(report)


def test_fill_with_pods_that_tile_the_nodes_leaves_nothing_unallocated() -> None:
    twos = [job(0, 0, 1, 2)]
    report = fill_experiment(
        twos, one_site(4, 2), default_queues(1), make(["best-fit"], twos), (1.0,)
    )
    assert report.levels[0].unallocated == {"best-fit": 0}
    assert report.levels[0].requested_gpus == 6


def test_fill_in_batches_measures_after_the_whole_batch() -> None:
    # 1-GPU pods, 4 per batch, on 10 GPUs: 50% is reached by pod 5, in the second batch,
    # so the measure is taken after 8 pods (8 GPUs asked, 2 left unallocated).
    ones = [job(0, 0, 1, 1)]
    policies = make(["fifo-first-fit"], ones)
    report = fill_experiment(ones, one_site(6, 4), default_queues(1), policies, (0.5,), batch=4)
    assert report.levels[0].requested_gpus == 8
    assert report.levels[0].unallocated == {"fifo-first-fit": 2}


def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


NODES = "sn,cpu_milli,memory_mib,gpu,model\n"
TRACE = "name,arrival,runtime,replicas,accelerators,classes,queue,residency\n"


def fleet_and_trace(tmp_path: Path, nodes: str, trace: str) -> tuple[Path, Path]:
    """Node rows and trace rows written under their headers as CSV files; their paths."""
    (tmp_path / "nodes.csv").write_text(NODES + nodes)
    (tmp_path / "trace.csv").write_text(TRACE + trace)
    return tmp_path / "nodes.csv", tmp_path / "trace.csv"


def test_simulate_prints_json_writes_charts_and_markdown(tmp_path: Path) -> None:
    rows = "a,0,10,1,2,,,\nc,1,5,1,4,,,\nd,12,1,1,1,,,\n"
    nodes, trace = fleet_and_trace(tmp_path, "n0,1,1,4,T4\nn1,1,1,2,T4\n", rows)
    result = CliRunner().invoke(
        app(),
        [
            "simulate", "--fleet", str(nodes), "--trace", str(trace), "--queues", "1",
            "--policy", "fifo-first-fit", "--policy", "best-fit", "--json",
            "--plot", str(tmp_path / "plots"), "--markdown", str(tmp_path / "t.md"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    waits = {p["policy"]: p["wait_mean"] for p in payload["policies"]}
    assert waits == {"fifo-first-fit": 3.0, "best-fit": 0.0}
    for name in ("allocation.png", "wait-cdf.png", "queue-shares.png"):
        assert (tmp_path / "plots" / name).read_bytes().startswith(b"\x89PNG")
    assert "| fifo-first-fit |" in (tmp_path / "t.md").read_text()


def test_simulate_names_the_bad_line_of_a_trace(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,4,T4\n")
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival,runtime,accelerators\n0,10,1\n0,ten,1\n")
    result = CliRunner().invoke(app(), ["simulate", "--fleet", str(nodes), "--trace", str(trace)])
    assert result.exit_code == 1
    assert f"{trace}:3: runtime:" in result.output


def test_simulate_refuses_an_unknown_policy(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,4,T4\n")
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival,runtime,accelerators\n0,10,1\n")
    result = CliRunner().invoke(
        app(), ["simulate", "--fleet", str(nodes), "--trace", str(trace), "--policy", "magic"]
    )
    assert result.exit_code == 1
    assert "policy: unknown magic" in result.output


def test_simulate_max_wait_lets_a_queue_over_its_share_go_first(tmp_path: Path) -> None:
    # One GPU. Queue b holds it alone for 1000 s (b0), so at t=1000 it is far over its
    # share: fairness alone starts a0 (queue a, waited 500 s) before b1 (waited 998 s).
    # With --max-wait 100 both are past the bound and the older, b1, goes first.
    rows = "b0,0,1000,1,1,,b,\nb1,2,10,1,1,,b,\na0,500,10,1,1,,a,\n"
    nodes, trace = fleet_and_trace(tmp_path, "n0,1,1,1,T4\n", rows)
    base = ["simulate", "--fleet", str(nodes), "--trace", str(trace), "--shares", "a=1,b=1"]
    base += ["--policy", "gpufleet", "--json"]
    waits = {}
    for extra in ([], ["--max-wait", "100"]):
        result = CliRunner().invoke(app(), [*base, *extra])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout[result.stdout.index("{") :])
        waits[payload["max_wait_seconds"]] = payload["policies"][0]["queue_wait_mean"]
    assert waits[3600.0] == {"a": 500.0, "b": (0.0 + 1008.0) / 2}
    assert waits[100.0] == {"a": 510.0, "b": (0.0 + 998.0) / 2}


def test_simulate_refuses_a_max_wait_of_zero_and_in_history_mode(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,4,T4\n")
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival,runtime,accelerators\n0,10,1\n")
    args = ["simulate", "--fleet", str(nodes), "--trace", str(trace), "--max-wait"]
    result = CliRunner().invoke(app(), [*args, "0"])
    assert result.exit_code == 1
    assert "max-wait: must be > 0" in result.output
    result = CliRunner().invoke(app(), [*args, "60", "--days", "1"])
    assert result.exit_code == 1
    assert "--max-wait: not in history mode" in result.output


def test_simulate_constrains_models_and_refuses_a_share_out_of_range(tmp_path: Path) -> None:
    nodes, trace = fleet_and_trace(
        tmp_path, "n0,1,1,4,T4\nn1,1,1,4,P100\n", "a,0,10,1,1,,,\nb,5,10,1,1,,,\n"
    )
    args = ["simulate", "--fleet", str(nodes), "--trace", str(trace), "--policy", "gpufleet"]
    result = CliRunner().invoke(app(), [*args, "--constrain-models", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    assert payload["policies"][0]["completed"] == 2
    result = CliRunner().invoke(app(), [*args, "--constrain-models", "2"])
    assert result.exit_code == 1
    assert "constrain-models: must be between 0 and 1 (got 2.0)" in result.output
    result = CliRunner().invoke(app(), [*args, "--constrain-models", "0.5", "--days", "1"])
    assert result.exit_code == 1
    assert "--constrain-models: not in history mode" in result.output


def test_frag_command_reports_unallocated_gpus(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,4,T4\nn1,1,1,4,T4\n")
    pods = tmp_path / "pods.csv"
    pods.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1,1,3,1000\n")
    result = CliRunner().invoke(
        app(),
        ["frag", "--fleet", str(nodes), "--pods", str(pods), "--levels", "1.0", "--json",
         "--policy", "best-fit", "--plot", str(tmp_path / "frag.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    assert payload["levels"][0]["unallocated"] == {"best-fit": 2}
    assert (tmp_path / "frag.png").read_bytes().startswith(b"\x89PNG")


def test_frag_counts_pod_cpu_and_reports_evictions_in_json_and_table(tmp_path: Path) -> None:
    # One node of 4 GPUs and 8 cores, pods of 1 GPU and 8 cores: the first pod takes all
    # the cores, so 3 GPUs stay unallocated however much is asked.
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,8000,65536,4,T4\n")
    pods = tmp_path / "pods.csv"
    pods.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,8000,1024,1,1000\n")
    args = ["frag", "--fleet", str(nodes), "--pods", str(pods), "--levels", "1.0,1.3"]
    as_json = CliRunner().invoke(app(), [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout[as_json.stdout.index("{") :])
    policies = ["gpufleet", "fifo-first-fit", "best-fit", "kueue-like"]
    assert [lv["unallocated"] for lv in payload["levels"]] == [dict.fromkeys(policies, 3)] * 2
    assert payload["evictions"] == dict.fromkeys(policies, 0)
    table = CliRunner().invoke(app(), args, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if "evictions" in line)
    assert [cell.strip() for cell in row.split("│")[3:7]] == ["0"] * 4
