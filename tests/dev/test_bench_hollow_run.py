"""`gpufleet dev bench --hollow`'s bench_hollow() on fakes: the control plane, the
kubelets, /proc and the clock are stand-ins, so its figures and its failure are checked
with no cluster started. The real run: `gpufleet dev bench --hollow N`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from gpufleet.dev import bench, clusters, hollow, tools


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Run:
    """Three kubelets; the i-th reports Ready on the (i+1)-th list of nodes, or never
    when `stuck`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stuck: int = 0) -> None:
        self.clock = Clock()
        self.stuck = stuck
        self.downs: list[str] = []
        self.started: list[str] = []
        self.lists = 0
        self.closed = False
        self.loads = iter([0.5, 2.25])
        hub = SimpleNamespace(
            kwok_name="gpufleet-bench-hollow-scale",
            kubeconfig=Path("/s/bench-hollow/scale.kubeconfig"),
            api_client=lambda: SimpleNamespace(close=self.close),
        )
        self.up_fleets: list[Any] = []

        def up(fleet: Any, **kwargs: Any) -> Any:
            self.up_fleets.append(fleet)
            return SimpleNamespace(hub=hub)

        monkeypatch.setattr(clusters, "up", up)
        monkeypatch.setattr(clusters, "down", lambda name, **kw: self.downs.append(name) or [])
        monkeypatch.setattr(clusters, "state_dir", lambda: tmp_path)
        monkeypatch.setattr(clusters, "cluster_processes", lambda kwok_name: [1])
        monkeypatch.setattr(
            tools, "find_tools", lambda: SimpleNamespace(require_kubemark=lambda: None)
        )
        monkeypatch.setattr(hollow, "start", self.start)
        monkeypatch.setattr(client, "CoreV1Api", lambda api: self)
        monkeypatch.setattr(time, "monotonic", self.clock.monotonic)
        monkeypatch.setattr(time, "sleep", self.clock.sleep)
        monkeypatch.setattr(bench, "_loadavg", lambda: next(self.loads))
        monkeypatch.setattr(bench, "_cpu_seconds", self.cpu_seconds)
        monkeypatch.setattr(bench, "rss_mb", self.rss_mb)

    def close(self) -> None:
        self.closed = True

    def start(self, tools: Any, state: Path, node: hollow.HollowNode) -> int:
        self.started.append(node.name)
        self.clock.now += 1.0
        return 100 + len(self.started)

    def list_node(self, label_selector: str) -> Any:
        assert label_selector == hollow.HOLLOW_SELECTOR
        self.lists += 1
        ready = min(self.lists, len(self.started) - self.stuck)
        return SimpleNamespace(
            items=[
                SimpleNamespace(
                    metadata=SimpleNamespace(name=name),
                    status=SimpleNamespace(
                        conditions=[SimpleNamespace(type="Ready", status=str(i < ready))]
                    ),
                )
                for i, name in enumerate(self.started)
            ]
        )

    def cpu_seconds(self, pid: int) -> float:
        # Each kubelet has used pid/100 cores since the clock's start.
        return (self.clock.now - 500.0) * pid / 1000

    def rss_mb(self, pids: list[int]) -> dict[str, float]:
        if pids == [1]:
            return {"etcd": 80.0, "kube-apiserver": 220.0}
        (pid,) = pids
        return {"kubemark": float(pid - 60)}


def test_bench_hollow_reports_start_to_ready_memory_cpu_and_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = Run(monkeypatch, tmp_path)
    result = bench.bench_hollow(3, settle=10.0)
    assert result == {
        "hollow_nodes": 3,
        "cores": os.cpu_count(),
        "start_to_ready_seconds": {"median": 2.5, "max": 3.0},
        "rss_mb_per_kubelet": {"median": 42.0, "max": 43.0},
        "rss_mb_all_kubelets": 126.0,
        "rss_mb_control_plane": 300.0,
        "kubelets_cpu_cores_steady": 0.31,
        "settle_seconds": 10.0,
        "loadavg_1m_before": 0.5,
        "loadavg_1m_after": 2.25,
    }
    assert run.started == ["hollow-h100-00000", "hollow-h100-00001", "hollow-h100-00002"]
    # The control plane came up alone; the kubelets were started one by one after it.
    (fleet,) = run.up_fleets
    assert fleet.clusters[0].node_groups == []
    assert run.closed
    assert run.downs == ["bench-hollow", "bench-hollow"]


def test_bench_hollow_fails_naming_how_many_became_ready_and_where_the_logs_are(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = Run(monkeypatch, tmp_path, stuck=1)
    with pytest.raises(clusters.FleetError) as failure:
        bench.bench_hollow(3, keep=True)
    assert str(failure.value) == (
        "only 2/3 hollow kubelets became Ready; logs in "
        f"{hollow.hollow_dir(tmp_path, 'bench-hollow')}"
    )
    assert run.closed
    assert run.downs == ["bench-hollow"]
