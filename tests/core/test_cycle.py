"""Cycle-level behaviour not covered by the YAML corpus: determinism, agreement
with the reference on the benchmark's synthetic fleet, verdict table, undo."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from gpufleet.bench.core import bench_core
from gpufleet.bench.synthetic import build_fleet
from gpufleet.cli.bench import register
from gpufleet.core import Snapshot, schedule
from gpufleet.core.cyclestate import CycleState
from gpufleet.core.reference import schedule_reference
from gpufleet.corebuild import core_build


def _snapshot(gpus: int = 2000, queues: int = 40, pending: int = 400, seed: int = 3) -> Snapshot:
    f = build_fleet(gpus, queues, pending, seed=seed)
    return Snapshot.build(f.sites, f.pools, f.nodes, f.queues, f.workloads, f.now)


def test_reference_makes_the_same_decisions_on_the_synthetic_fleet() -> None:
    for seed in (1, 2):
        snap = _snapshot(seed=seed)
        fast, ref = schedule(snap), schedule_reference(snap)
        assert fast.admissions, "the scenario should admit something"
        assert fast.evictions, "the scenario should reclaim something"
        assert fast.admissions == ref.admissions
        assert fast.evictions == ref.evictions
        assert fast.queue_order == ref.queue_order
        assert fast.allocated == ref.allocated


def test_schedule_is_deterministic_and_leaves_the_snapshot_untouched() -> None:
    snap = _snapshot()
    free = snap.acc_free.copy()
    a, b = schedule(snap), schedule(snap)
    assert a.admissions == b.admissions
    assert a.evictions == b.evictions
    assert (snap.acc_free == free).all()


def test_verdict_table_covers_exactly_the_workloads_left_pending() -> None:
    snap = _snapshot(pending=200)
    result = schedule(snap)
    admitted = {a.workload for a in result.admissions}
    left = [w.key for w in snap.pending if w.key not in admitted]
    assert list(result.verdicts) == left
    assert len(result.verdicts) == len(left)
    key = left[0]
    first = result.verdicts[key]
    assert [v.site for v in first] == [s.name for s in snap.sites]
    assert result.verdicts[key] == first
    assert next(iter(admitted)) not in result.verdicts
    positions = [result.positions[k] for k in left if snap.pending[0].queue == k]
    assert all(p >= 1 for p in positions)


def test_simulate_removal_is_undone_exactly() -> None:
    snap = _snapshot(pending=0)
    state = CycleState(snap)
    before = (state.acc.copy(), [list(h) for h in state.hist], [list(a) for a in state.alloc])
    undo = state.simulate_removal(0)
    assert (state.acc != before[0]).any()
    undo()
    assert (state.acc == before[0]).all()
    assert state.hist == before[1]
    assert state.alloc == before[2]


def test_bench_reports_the_required_figures() -> None:
    out = bench_core(2000, 20, 200, repeats=2, reference=True, seed=1)
    for key in (
        "gpus",
        "nodes",
        "queues",
        "pending",
        "admitted",
        "cycle_seconds_median",
        "cycle_seconds_max",
        "peak_rss_mb",
        "reference_cycle_seconds",
    ):
        assert key in out
    assert out["gpus"] == 2000
    assert out["nodes"] == 250
    assert out["pending"] == 200
    assert out["reference_same_decisions"] is True
    # The figures say which build of the core they measured.
    assert out["core"] == core_build()
    assert out["cycle_seconds_max"] >= out["cycle_seconds_median"] > 0
    assert out["cycle_seconds_max"] >= out["cycle_seconds_mean"] >= out["cycle_seconds_min"]


def test_bench_cli_prints_one_json_object() -> None:
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "core",
            "--gpus",
            "1000",
            "--queues",
            "10",
            "--pending",
            "50",
            "--repeats",
            "1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["queues"] == 10
    assert data["reference_same_decisions"] is True
