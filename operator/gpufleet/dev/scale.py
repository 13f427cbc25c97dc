"""The operator at scale: three real control planes, N GPUs of KWOK nodes, W workloads.

`gpufleet dev scale --gpus N --workloads W` brings up three clusters (the hub and two
members, 8-GPU nodes split evenly), registers them, starts `gpufleet run` as a process,
submits W workloads of mixed shapes at a steady rate over four queues, and reads the
operator's own metrics: cycle and step durations (histograms), write requests by kind,
and its peak RSS from /proc. Nothing is asserted; it prints what it measured.

Median and max of the steady cycle come from histogram buckets (interpolated within a
bucket for the median, the bucket's upper bound for the max, as Prometheus would); the
mean is exact.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.dev import clusters
from gpufleet.dev.bench import rss_mb
from gpufleet.dev.register import register
from gpufleet.fleetfile import Fleet, parse_fleet

Progress = Callable[[str], None]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

STEPS = ("view", "translate", "snapshot", "schedule", "apply", "statuses")
QUEUES = 4
# (replicas, accelerators per replica, classes): single GPUs to 64-GPU gangs.
SHAPES: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (1, 1, ("nvidia-h100", "nvidia-h200")),
    (1, 1, ("nvidia-h100", "nvidia-h200")),
    (1, 2, ("nvidia-h200",)),
    (1, 4, ("nvidia-h100", "nvidia-h200")),
    (1, 8, ("nvidia-h100",)),
    (2, 8, ("nvidia-h200",)),
    (4, 8, ("nvidia-h100", "nvidia-h200")),
    (8, 8, ("nvidia-h200",)),
)
SITES = (("fra", "DE", "nvidia-h100"), ("ams", "NL", "nvidia-h200"), ("osl", "NO", "nvidia-h200"))


def scale_fleet(name: str, gpus: int) -> Fleet:
    nodes = max(1, math.ceil(gpus / 8))
    per = [nodes // 3 + (1 if i < nodes % 3 else 0) for i in range(3)]
    return parse_fleet(
        {
            "name": name,
            "clusters": [
                {
                    "name": f"{name}-{site}",
                    "hub": i == 0,
                    "site": {
                        "name": f"{name}-{site}",
                        "type": "AIFactory",
                        "jurisdiction": juris,
                        "regions": ["EU"] if juris != "NO" else ["EEA"],
                    },
                    "nodeGroups": [
                        {
                            "name": f"{site}-{cls.split('-')[1]}",
                            "count": per[i],
                            "acceleratorClass": cls,
                            "acceleratorsPerNode": 8,
                            "topology": {"nodesPerRack": 16},
                        }
                    ],
                }
                for i, (site, juris, cls) in enumerate(SITES)
            ],
        }
    )


def _scrape(port: int) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    # A loaded machine may keep the operator from answering for a while: try again.
    for attempt in range(4):
        try:
            # Fixed http URL on loopback.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as rsp:  # nosec B310
                text = rsp.read().decode()
            break
        except OSError:
            if attempt == 3:
                raise
            time.sleep(2)
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def _histogram(before: Samples, after: Samples, name: str, **match: str) -> dict[str, float]:
    """Count, sum, median and max of one histogram's observations between two scrapes."""
    buckets: dict[float, float] = {}
    total = {"count": 0.0, "sum": 0.0}
    for (sample, labels), value in after.items():
        lab = dict(labels)
        if any(lab.get(k) != v for k, v in match.items()):
            continue
        delta = value - before.get((sample, labels), 0.0)
        if sample == f"{name}_bucket":
            le = float(lab["le"])
            buckets[le] = buckets.get(le, 0.0) + delta
        elif sample == f"{name}_count":
            total["count"] += delta
        elif sample == f"{name}_sum":
            total["sum"] += delta
    count = total["count"]
    if count <= 0:
        return {"count": 0, "mean": 0.0, "median": 0.0, "max": 0.0}
    bounds = sorted(buckets)
    median, lower, seen = 0.0, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= count / 2:
            # Linear within the bucket, as histogram_quantile does.
            width = (le if math.isfinite(le) else lower) - lower
            inside = buckets[le] - seen
            median = lower + width * ((count / 2 - seen) / inside if inside else 1.0)
            break
        lower, seen = le, buckets[le]
    top = next((le for le in bounds if buckets[le] >= count), bounds[-1])
    finite = [le for le in bounds if math.isfinite(le)]
    return {
        "count": int(count),
        "mean": round(total["sum"] / count, 4),
        "median": round(median, 4),
        "max": top if math.isfinite(top) else (finite[-1] if finite else 0.0),
    }


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _workload(i: int, rng: random.Random) -> dict[str, Any]:
    replicas, gpus, classes = rng.choice(SHAPES)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workload",
        "metadata": {"name": f"w{i:06d}", "namespace": f"scale-{i % QUEUES}"},
        "spec": {
            "queue": f"scale-{i % QUEUES}",
            "replicas": replicas,
            "acceleratorsPerReplica": gpus,
            "acceleratorClasses": list(classes),
            "template": {"spec": {"containers": [{"name": "c", "image": "pause"}]}},
        },
    }


def measure(
    gpus: int,
    workloads: int,
    *,
    rate: float = 100.0,
    steady_seconds: float = 30.0,
    name: str = "scale",
    keep: bool = False,
    progress: Progress = print,
) -> dict[str, Any]:
    from kubernetes import client

    fleet = scale_fleet(name, gpus)
    clusters.down(name)
    t_up = time.monotonic()
    progress(f"bringing up three clusters with {gpus} GPUs ({math.ceil(gpus / 8)} nodes)")
    running = clusters.up(fleet, source="scale", name=name, progress=progress)
    up_seconds = time.monotonic() - t_up
    proc: subprocess.Popen[bytes] | None = None
    try:
        register(fleet, running, "gpufleet-system")
        hub = running.hub
        api = hub.api_client()
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        capacity = {"nvidia-h100": 0, "nvidia-h200": 0}
        for spec in fleet.clusters:
            for g in spec.node_groups:
                capacity[g.accelerator_class] += g.count * g.accelerators_per_node
        for q in range(QUEUES):
            # gpufleet dispatches only into namespaces at least as strict as the queue.
            labels = {"pod-security.kubernetes.io/enforce": "baseline"}
            core.create_namespace({"metadata": {"name": f"scale-{q}", "labels": labels}})
            custom.create_cluster_custom_object(
                GROUP,
                VERSION,
                "queues",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Queue",
                    "metadata": {"name": f"scale-{q}"},
                    "spec": {
                        "namespaces": [f"scale-{q}"],
                        "resources": [
                            {"acceleratorClass": c, "deserved": n // QUEUES}
                            for c, n in capacity.items()
                        ],
                    },
                },
            )
        port = _free_port()
        log = open(clusters.state_dir() / f"{name}-operator.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpufleet.cli",
                "run",
                "--kubeconfig",
                str(hub.kubeconfig),
                "--metrics-port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _until("the operator to be ready", lambda: _ready(port), 300)
        # A reproducible workload mix, not a secret.
        rng = random.Random(16)  # nosec B311
        bodies = [_workload(i, rng) for i in range(workloads)]
        demand = sum(b["spec"]["replicas"] * b["spec"]["acceleratorsPerReplica"] for b in bodies)
        progress(f"submitting {workloads} workloads ({demand} GPUs) at {rate:.0f}/s")
        before_all = _scrape(port)
        t0 = time.monotonic()
        submitter = threading.Thread(
            target=_submit, args=(custom, bodies, rate), name="scale-submit", daemon=True
        )
        submitter.start()

        admitted_at: list[float] = []
        decided_at = None
        last_admitted = -1
        last_decided = -1
        while time.monotonic() - t0 < max(900.0, workloads / 5):
            items = custom.list_cluster_custom_object(
                GROUP, VERSION, "workloads", _request_timeout=120
            )["items"]
            placed = sum(
                1 for w in items if (w.get("status") or {}).get("phase") in ("Admitted", "Running")
            )
            decided = sum(
                1
                for w in items
                if (w.get("status") or {}).get("phase") not in (None, "Pending")
                or (w.get("status") or {}).get("verdicts")
            )
            if placed != last_admitted:
                admitted_at.append(time.monotonic())
            if (placed, decided) != (last_admitted, last_decided):
                last_admitted, last_decided = placed, decided
                progress(
                    f"{time.monotonic() - t0:6.1f}s submitted {len(items)}, placed {placed}, decided {decided}"
                )
            if len(items) == workloads and decided == workloads:
                decided_at = time.monotonic()
                break
            time.sleep(2)
        submitter.join()
        progress("all decided; waiting for the writes to settle")
        _settle(port, progress)
        progress(f"{steady_seconds:.0f}s of steady cycles")
        steady_from = _scrape(port)
        time.sleep(steady_seconds)
        steady_to = _scrape(port)
        writes = {
            dict(labels)["kind"]: value - before_all.get((sample, labels), 0.0)
            for (sample, labels), value in steady_to.items()
            if sample == "gpufleet_api_writes_total"
        }
        cycle = _histogram(steady_from, steady_to, "gpufleet_scheduling_cycle_duration_seconds")
        steps = {
            step: _histogram(
                steady_from, steady_to, "gpufleet_scheduling_step_duration_seconds", step=step
            )
            for step in STEPS
        }
        placed_total = last_admitted
        first_to_last = (admitted_at[-1] - t0) if admitted_at else 0.0
        result = {
            "gpus": sum(capacity.values()),
            "nodes": sum(g.count for c in fleet.clusters for g in c.node_groups),
            "workloads": workloads,
            "gpus_demanded": demand,
            "clusters_up_seconds": round(up_seconds, 1),
            "steady_cycles": cycle["count"],
            "steady_cycle_seconds_median": cycle["median"],
            "steady_cycle_seconds_max": cycle["max"],
            "steady_cycle_seconds_mean": cycle["mean"],
            "steady_step_seconds_median": {s: v["median"] for s, v in steps.items()},
            "steady_step_seconds_max": {s: v["max"] for s, v in steps.items()},
            "steady_step_seconds_mean": {s: v["mean"] for s, v in steps.items()},
            "peak_rss_mb": _peak_rss_mb(proc.pid),
            "control_plane_rss_mb": round(
                sum(
                    sum(rss_mb(clusters.cluster_processes(c.kwok_name)).values())
                    for c in running.clusters.values()
                ),
                1,
            ),
            "api_writes": {k: int(v) for k, v in sorted(writes.items())},
            "api_writes_per_workload": round(sum(writes.values()) / max(workloads, 1), 2),
            "placed": placed_total,
            "admitted_per_second": round(placed_total / first_to_last, 1) if first_to_last else 0.0,
            "seconds_to_all_decided": round(decided_at - t0, 1) if decided_at else None,
        }
        api.close()
        return result
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not keep:
            clusters.down(name)


def _writes(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "gpufleet_api_writes_total")


def _settle(port: int, progress: Progress, quiet: float = 10.0, timeout: float = 300.0) -> None:
    """Until no write for `quiet` seconds: the last Running records and explanations."""
    deadline = time.monotonic() + timeout
    last, since = _writes(_scrape(port)), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1)
        now = _writes(_scrape(port))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    progress(f"writes still going after {timeout:.0f}s; measuring anyway")


def _submit(custom: Any, bodies: list[dict[str, Any]], rate: float) -> None:
    """Create the workloads at about `rate` per second, in one-second waves."""
    per_wave = max(1, int(rate))
    with ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, len(bodies), per_wave):
            wave_started = time.monotonic()
            wave = bodies[start : start + per_wave]
            list(
                pool.map(
                    lambda b: custom.create_namespaced_custom_object(
                        GROUP, VERSION, b["metadata"]["namespace"], "workloads", b
                    ),
                    wave,
                )
            )
            # Pacing, not synchronisation: the next wave is due a second after this one began.
            time.sleep(max(0.0, 1.0 - (time.monotonic() - wave_started)))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        # Fixed http URL on loopback.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as rsp:  # nosec B310
            return bool(rsp.status == 200)
    except OSError:
        return False


def _until(what: str, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
