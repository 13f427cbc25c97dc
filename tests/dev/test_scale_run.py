"""`gpufleet dev scale`'s measure() on fakes: the clusters, the operator process, its
metrics endpoint and the clock are stand-ins, so the run's steps and the figures it
reports are checked with no cluster started. The real run: `gpufleet dev scale`."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gpufleet.dev import clusters, scale


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeCustom:
    """Queues as created; workloads as submitted, placed over two lists."""

    def __init__(self, submitted: threading.Event) -> None:
        self.submitted = submitted
        self.queues: list[dict[str, Any]] = []
        self.workloads: list[dict[str, Any]] = []
        self.lists = 0

    def create_cluster_custom_object(
        self, group: str, version: str, plural: str, body: dict[str, Any]
    ) -> None:
        assert plural == "queues"
        self.queues.append(body)

    def create_namespaced_custom_object(
        self, group: str, version: str, ns: str, plural: str, body: dict[str, Any]
    ) -> None:
        self.workloads.append(body)

    def list_cluster_custom_object(
        self, group: str, version: str, plural: str, _request_timeout: float
    ) -> dict[str, Any]:
        self.submitted.wait(10)
        self.lists += 1
        items = []
        for i, w in enumerate(self.workloads):
            if self.lists == 1:
                status = {"phase": "Running"} if i < 3 else {}
            elif i < len(self.workloads) - 1:
                status = {"phase": "Admitted" if i % 2 else "Running"}
            else:
                status = {"phase": "Pending", "verdicts": [{"rule": "InsufficientAccelerators"}]}
            items.append({**w, "status": status})
        return {"items": items}


class FakeApiClient:
    def __init__(self) -> None:
        self.rest_client = type("R", (), {"pool_manager": type("P", (), {})()})()
        self.rest_client.pool_manager.connection_pool_kw = {}
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeProcess:
    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        self.argv = argv
        self.pid = 4242
        self.terminated = False

    def terminate(self) -> None:
        self.terminated = True

    def wait(self, timeout: float) -> int:
        return 0


def metrics_text(now: float, started: bool) -> str:
    """The operator's counters and histograms as they stand at `now` (a cycle every 5 s,
    50 ms each, its schedule step 20 ms); its writes are all done once it has started."""
    cycles = int(now // 5)
    lines = []
    for kind, n in (("pod_create", 30), ("status_patch", 12)):
        lines.append(f'gpufleet_api_writes_total{{kind="{kind}"}} {n if started else 0}')
    name = "gpufleet_scheduling_cycle_duration_seconds"
    lines += [
        f'{name}_bucket{{le="0.025"}} 0',
        f'{name}_bucket{{le="0.1"}} {cycles}',
        f'{name}_bucket{{le="+Inf"}} {cycles}',
        f"{name}_count {cycles}",
        f"{name}_sum {cycles * 0.05}",
    ]
    name = "gpufleet_scheduling_step_duration_seconds"
    for step in scale.STEPS:
        fast = step != "schedule"
        lines += [
            f'{name}_bucket{{step="{step}",le="0.025"}} {cycles}',
            f'{name}_bucket{{step="{step}",le="0.1"}} {cycles}',
            f'{name}_bucket{{step="{step}",le="+Inf"}} {cycles}',
            f'{name}_count{{step="{step}"}} {cycles}',
            f'{name}_sum{{step="{step}"}} {cycles * (0.001 if fast else 0.02)}',
        ]
    return "\n".join(lines) + "\n"


class Run:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.clock = Clock()
        self.submitted = threading.Event()
        self.custom = FakeCustom(self.submitted)
        self.namespaces: list[dict[str, Any]] = []
        self.downs: list[str] = []
        self.registered: list[str] = []
        self.processes: list[FakeProcess] = []
        self.api = FakeApiClient()
        self.scrapes = 0
        hub = clusters.Cluster(
            name="scale-fra",
            kwok_name="gpufleet-scale-fra",
            kubeconfig=Path("/s/scale/hub.kubeconfig"),
            server="https://127.0.0.1:6443",
            site="scale-fra",
            hub=True,
            nodes=5,
            kubectl_path=Path("/bin/kubectl"),
        )
        monkeypatch.setattr(hub.__class__, "api_client", lambda c: self.api)
        self.running = clusters.RunningFleet("scale", "scale", {"scale-fra": hub})

        def up(fleet: Any, **kwargs: Any) -> clusters.RunningFleet:
            self.clock.now += 42.0
            return self.running

        monkeypatch.setattr(clusters, "up", up)
        monkeypatch.setattr(clusters, "down", lambda name, **kw: self.downs.append(name) or [])
        monkeypatch.setattr(clusters, "state_dir", lambda: tmp_path)
        monkeypatch.setattr(clusters, "cluster_processes", lambda kwok_name: [1, 2])
        monkeypatch.setattr(scale, "register", lambda f, r, ns: self.registered.append(ns))
        monkeypatch.setattr(scale, "rss_mb", lambda pids: {"etcd": 100.0, "kube-apiserver": 50.5})
        monkeypatch.setattr(scale, "_peak_rss_mb", lambda pid: 321.0 if pid == 4242 else 0.0)
        # The operator's CPU seconds and the machine's (busy, total) ticks, read at the
        # start and the end of the steady window.
        cpu, ticks = iter([10.0, 13.5]), iter([(100, 400), (250, 600)])
        monkeypatch.setattr(scale, "_process_cpu_seconds", lambda pid: next(cpu))
        monkeypatch.setattr(scale, "_machine_ticks", lambda: next(ticks))
        monkeypatch.setattr(scale.os, "getloadavg", lambda: (3.25, 2.0, 1.0))
        monkeypatch.setattr(time, "monotonic", self.clock.monotonic)
        monkeypatch.setattr(time, "sleep", self.clock.sleep)
        monkeypatch.setattr(client, "CoreV1Api", lambda api: self)
        monkeypatch.setattr(client, "CustomObjectsApi", lambda api: self.custom)
        monkeypatch.setattr(subprocess, "Popen", self.popen)
        monkeypatch.setattr("urllib.request.urlopen", self.urlopen)

        def submit(custom: Any, bodies: list[dict[str, Any]], rate: float) -> None:
            for b in bodies:
                custom.create_namespaced_custom_object("g", "v", "ns", "workloads", b)
            self.submitted.set()

        monkeypatch.setattr(scale, "_submit", submit)

    def create_namespace(self, body: dict[str, Any]) -> None:
        self.namespaces.append(body)

    def popen(self, argv: list[str], **kwargs: Any) -> FakeProcess:
        proc = FakeProcess(argv, **kwargs)
        self.processes.append(proc)
        return proc

    def urlopen(self, url: str, timeout: float) -> Any:
        (proc,) = self.processes
        port = proc.argv[proc.argv.index("--metrics-port") + 1]
        assert url.startswith(f"http://127.0.0.1:{port}/")
        if url.endswith("/readyz"):
            rsp = io.BytesIO(b"ok")
            rsp.status = 200  # type: ignore[attr-defined]
            return rsp
        self.scrapes += 1
        return io.BytesIO(metrics_text(self.clock.now, started=self.scrapes > 1).encode())


def test_measure_runs_the_operator_over_the_fleet_and_reports_the_steady_window(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = Run(monkeypatch, tmp_path)
    progress: list[str] = []
    result = scale.measure(80, 6, rate=50, steady_seconds=20, progress=progress.append)

    assert result == {
        "gpus": 80,
        "nodes": 10,
        "workloads": 6,
        "gpus_demanded": result["gpus_demanded"],
        "clusters_up_seconds": 42.0,
        "steady_cycles": 4,
        "steady_cycle_seconds_median": 0.0625,
        "steady_cycle_seconds_max": 0.1,
        "steady_cycle_seconds_mean": 0.05,
        "steady_step_seconds_median": dict.fromkeys(scale.STEPS, 0.0125),
        "steady_step_seconds_max": dict.fromkeys(scale.STEPS, 0.025),
        "steady_step_seconds_mean": {s: 0.02 if s == "schedule" else 0.001 for s in scale.STEPS},
        "steady_window": {
            "seconds": 20,
            "operator_cpu_seconds": 3.5,
            "machine_busy_fraction": 0.75,
            "load_average_1m": 3.25,
        },
        "peak_rss_mb": 321.0,
        "control_plane_rss_mb": 150.5,
        "api_writes": {"pod_create": 30, "status_patch": 12},
        "api_writes_per_workload": 7.0,
        "placed": 5,
        "admitted_per_second": 2.5,
        "seconds_to_all_decided": 2.0,
    }
    bodies = run.custom.workloads
    assert result["gpus_demanded"] == sum(
        b["spec"]["replicas"] * b["spec"]["acceleratorsPerReplica"] for b in bodies
    )
    assert [b["metadata"]["name"] for b in bodies] == [f"w{i:06d}" for i in range(6)]
    assert [b["metadata"]["namespace"] for b in bodies] == [f"scale-{i % 4}" for i in range(6)]

    assert run.namespaces == [
        {
            "metadata": {
                "name": f"scale-{q}",
                "labels": {"pod-security.kubernetes.io/enforce": "baseline"},
            }
        }
        for q in range(4)
    ]
    assert [q["metadata"]["name"] for q in run.custom.queues] == [f"scale-{q}" for q in range(4)]
    assert run.custom.queues[0]["spec"] == {
        "namespaces": ["scale-0"],
        "resources": [
            {"acceleratorClass": "nvidia-h100", "deserved": 8},
            {"acceleratorClass": "nvidia-h200", "deserved": 12},
        ],
    }
    (proc,) = run.processes
    assert proc.argv[:7] == [
        sys.executable, "-m", "gpufleet.cli", "run", "--kubeconfig", "/s/scale/hub.kubeconfig",
        "--metrics-port",
    ]  # fmt: skip
    assert proc.terminated
    assert run.registered == ["gpufleet-system"]
    assert run.downs == ["scale", "scale"]
    assert run.api.closed
    assert run.api.rest_client.pool_manager.connection_pool_kw == {"maxsize": 16}
    assert (tmp_path / "scale-operator.log").exists()
    assert progress[0] == "bringing up three clusters with 80 GPUs (10 nodes)"
    assert progress[1].startswith("submitting 6 workloads (")
    assert progress[1].endswith(" GPUs) at 50/s")
    assert progress[2:] == [
        "   0.0s submitted 6, placed 3, decided 3",
        "   2.0s submitted 6, placed 5, decided 6",
        "all decided; waiting for the writes to settle",
        "20s of steady cycles",
    ]


def test_measure_keeps_the_fleet_when_asked_and_stops_the_operator_on_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = Run(monkeypatch, tmp_path)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("API server gone")

    monkeypatch.setattr(run.custom, "list_cluster_custom_object", broken)
    with pytest.raises(RuntimeError, match="API server gone"):
        scale.measure(80, 6, keep=True, progress=lambda m: None)
    (proc,) = run.processes
    assert proc.terminated
    assert run.downs == ["scale"]
