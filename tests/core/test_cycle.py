"""Cycle-level behaviour not covered by the YAML corpus: determinism, agreement
with the reference on the benchmark's synthetic fleet, verdict table, undo."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import typer
from typer.testing import CliRunner

from gpufleet.bench.core import bench_core
from gpufleet.bench.synthetic import build_fleet
from gpufleet.cli.bench import register
from gpufleet.core import Snapshot, schedule
from gpufleet.core.cyclestate import CycleState
from gpufleet.core.fairness import waiting_since
from gpufleet.core.model import Workload
from gpufleet.core.reference import schedule_reference
from gpufleet.corebuild import core_build

# What stops a workload at a site that may take it: room, limits and shape (all
# synthetic sites are connected and schedulable).
CAPACITY_RULES = {
    "QuotaLimitReached",
    "PowerBudgetExceeded",
    "TopologyUnsatisfiable",
    "InsufficientAccelerators",
    "InsufficientCPU",
    "InsufficientMemory",
    "InsufficientPods",
    "Fits",
}


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
    assert admitted, "the scenario should admit something"
    left = [w.key for w in snap.pending if w.key not in admitted]
    assert left, "the scenario should leave something pending"
    assert list(result.verdicts) == left
    assert len(result.verdicts) == len(left)
    assert not admitted & set(result.verdicts)


def test_queue_positions_count_within_each_queue_in_queue_order() -> None:
    f = build_fleet(2000, 40, 200, seed=3)
    result = schedule(Snapshot.build(f.sites, f.pools, f.nodes, f.queues, f.workloads, f.now))
    admitted = {a.workload for a in result.admissions}
    # Worked out from the input, not from the snapshot's sorted tuple: in its own
    # queue, by priority (highest first), then when its wait began (arrival or last
    # eviction), then key.
    by_queue: dict[str, list[Workload]] = defaultdict(list)
    for w in f.workloads:
        if w.placement is None and w.key not in admitted:
            by_queue[w.queue].append(w)
    expected = {
        w.key: i
        for ws in by_queue.values()
        for i, w in enumerate(
            sorted(
                ws,
                key=lambda w: (-w.priority, waiting_since(w.created_at, w.eviction_times), w.key),
            ),
            1,
        )
    }
    # Not vacuous: several queues keep more than one workload waiting.
    assert sum(len(ws) > 1 for ws in by_queue.values()) >= 5
    assert result.positions == expected


def test_verdicts_follow_the_location_rules_and_do_not_depend_on_reading_order() -> None:
    snap = _snapshot(pending=200)
    a, b = schedule(snap), schedule(snap)
    # Read one table front to back and the other back to front: verdicts share
    # per-shape state, and a read must not change what a later read says.
    forward = {k: a.verdicts[k] for k in list(a.verdicts)}
    backward = {k: b.verdicts[k] for k in reversed(list(b.verdicts))}
    assert forward == backward
    assert all(site.connected and site.schedulable for site in snap.sites)
    pending = {w.key: w for w in snap.pending}
    by_site: Counter[str] = Counter()
    for key, verdicts in forward.items():
        w = pending[key]
        assert [v.site for v in verdicts] == [s.name for s in snap.sites]
        for s, (site, v) in enumerate(zip(snap.sites, verdicts, strict=True)):
            assert v.message, (key, site.name)
            # The rules decided by the site alone, worked out from the model.
            if not w.residency.allows_location(site):
                expected = "ResidencyDenied"
            elif w.residency.missing_certifications(site):
                expected = "CertificationMissing"
            elif not snap.entitled[snap.queue_index[w.queue]][s]:
                expected = "NotEntitled"
            elif not any(
                p.site == site.name and p.accelerator_class in w.accelerator_classes
                for p in snap.pools
            ):
                expected = "AcceleratorClassUnavailable"
            else:
                expected = "capacity"
            by_site[expected] += 1
            if expected == "capacity":
                assert v.rule in CAPACITY_RULES, (key, site.name, v)
            else:
                assert v.rule == expected, (key, site.name, v)
    # Not vacuous: every branch above was taken.
    assert set(by_site) == {
        "ResidencyDenied",
        "CertificationMissing",
        "NotEntitled",
        "AcceleratorClassUnavailable",
        "capacity",
    }, by_site


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
