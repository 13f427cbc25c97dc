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
import os
import random
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.dev import clusters
from gpufleet.dev.bench import rss_mb
from gpufleet.dev.operator_process import free_port, ready, start_operator
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
    try:
        register(fleet, running, "gpufleet-system")
        api = running.hub.api_client()
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16
        custom = client.CustomObjectsApi(api)
        capacity = _capacity(fleet)
        _create_queues(client.CoreV1Api(api), custom, capacity)
        log = clusters.state_dir() / f"{name}-operator.log"
        with _operator(running.hub.kubeconfig, log) as (proc, port):
            bodies = _workloads(workloads)
            demand = sum(
                b["spec"]["replicas"] * b["spec"]["acceleratorsPerReplica"] for b in bodies
            )
            progress(f"submitting {workloads} workloads ({demand} GPUs) at {rate:.0f}/s")
            before_all = _scrape(port)
            decisions = _submit_until_decided(custom, bodies, rate, progress)
            progress("all decided; waiting for the writes to settle")
            _settle(port, progress)
            steady_from, steady_to, machine = _steady_window(
                port, proc.pid, steady_seconds, progress
            )
            writes = _writes_since(before_all, steady_to)
            result = {
                "gpus": sum(capacity.values()),
                "nodes": sum(g.count for c in fleet.clusters for g in c.node_groups),
                "workloads": workloads,
                "gpus_demanded": demand,
                "clusters_up_seconds": round(up_seconds, 1),
                **_steady_cycles(steady_from, steady_to),
                "steady_window": {"seconds": steady_seconds, **machine},
                "peak_rss_mb": _peak_rss_mb(proc.pid),
                "control_plane_rss_mb": _control_plane_rss_mb(running),
                "api_writes": {k: int(v) for k, v in sorted(writes.items())},
                "api_writes_per_workload": round(sum(writes.values()) / max(workloads, 1), 2),
                **decisions.figures(),
            }
            api.close()
            return result
    finally:
        if not keep:
            clusters.down(name)


@contextmanager
def _operator(kubeconfig: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`gpufleet run` on the hub, ready, and its metrics port; stopped on the way out."""
    port = free_port()
    with open(log, "wb") as out:
        proc = start_operator(kubeconfig, out, port)
        try:
            _until("the operator to be ready", lambda: ready(port), 300)
            yield proc, port
        finally:
            _stop(proc)


def _workloads(n: int) -> list[dict[str, Any]]:
    # A reproducible workload mix, not a secret.
    rng = random.Random(16)  # nosec B311
    return [_workload(i, rng) for i in range(n)]


def _steady_window(
    port: int, pid: int, seconds: float, progress: Progress
) -> tuple[Samples, Samples, dict[str, float]]:
    """Scrapes at the start and end of `seconds` of steady state, and what the machine
    did meanwhile: the operator's CPU seconds (all its threads) and how busy the CPUs were
    (the control planes share them: a cycle's wall time includes waiting for a core)."""
    progress(f"{seconds:.0f}s of steady cycles")
    start, cpu0, (busy0, total0) = _scrape(port), _process_cpu_seconds(pid), _machine_ticks()
    time.sleep(seconds)  # the measurement window itself, not a wait for anything
    end, cpu1, (busy1, total1) = _scrape(port), _process_cpu_seconds(pid), _machine_ticks()
    return (
        start,
        end,
        {
            "operator_cpu_seconds": round(cpu1 - cpu0, 2),
            "machine_busy_fraction": round((busy1 - busy0) / max(total1 - total0, 1), 3),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
    )


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (fields 14 and 15 of its stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the machine since boot: idle and iowait are not busy."""
    numbers = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(numbers) - numbers[3] - numbers[4], sum(numbers)


def _capacity(fleet: Fleet) -> dict[str, int]:
    """Accelerators per class over the fleet's node groups."""
    capacity = {"nvidia-h100": 0, "nvidia-h200": 0}
    for spec in fleet.clusters:
        for g in spec.node_groups:
            capacity[g.accelerator_class] += g.count * g.accelerators_per_node
    return capacity


def _create_queues(core: Any, custom: Any, capacity: dict[str, int]) -> None:
    """QUEUES queues, each deserving an equal part of every class, each with a namespace."""
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


@dataclass
class _Decisions:
    """Monotonic times of a submission: its start, each change in the number placed,
    and when every workload was decided (None: not within the wait)."""

    started: float
    placed_changed_at: list[float] = field(default_factory=list)
    decided_at: float | None = None
    placed: int = -1

    def figures(self) -> dict[str, Any]:
        first_to_last = (
            (self.placed_changed_at[-1] - self.started) if self.placed_changed_at else 0.0
        )
        return {
            "placed": self.placed,
            "admitted_per_second": round(self.placed / first_to_last, 1) if first_to_last else 0.0,
            "seconds_to_all_decided": (
                round(self.decided_at - self.started, 1) if self.decided_at else None
            ),
        }


def _submit_until_decided(
    custom: Any, bodies: list[dict[str, Any]], rate: float, progress: Progress
) -> _Decisions:
    """Submit at `rate` in the background and list the workloads every 2 s until each is
    placed or has a verdict (at most 900 s, or longer for many)."""
    workloads = len(bodies)
    decisions = _Decisions(started=time.monotonic())
    submitter = threading.Thread(
        target=_submit, args=(custom, bodies, rate), name="scale-submit", daemon=True
    )
    submitter.start()
    last_decided = -1
    while time.monotonic() - decisions.started < max(900.0, workloads / 5):
        items = custom.list_cluster_custom_object(
            GROUP, VERSION, "workloads", _request_timeout=120
        )["items"]
        placed, decided = _placed_and_decided(items)
        if placed != decisions.placed:
            decisions.placed_changed_at.append(time.monotonic())
        if (placed, decided) != (decisions.placed, last_decided):
            decisions.placed, last_decided = placed, decided
            progress(
                f"{time.monotonic() - decisions.started:6.1f}s submitted {len(items)}, placed {placed}, decided {decided}"
            )
        if len(items) == workloads and decided == workloads:
            decisions.decided_at = time.monotonic()
            break
        time.sleep(2)
    submitter.join()
    return decisions


def _placed_and_decided(items: list[dict[str, Any]]) -> tuple[int, int]:
    """Workloads placed (Admitted or Running), and decided (placed, or pending with a verdict)."""
    statuses = [w.get("status") or {} for w in items]
    placed = sum(1 for st in statuses if st.get("phase") in ("Admitted", "Running"))
    decided = sum(
        1 for st in statuses if st.get("phase") not in (None, "Pending") or st.get("verdicts")
    )
    return placed, decided


def _writes_since(before: Samples, after: Samples) -> dict[str, float]:
    return {
        dict(labels)["kind"]: value - before.get((sample, labels), 0.0)
        for (sample, labels), value in after.items()
        if sample == "gpufleet_api_writes_total"
    }


def _steady_cycles(before: Samples, after: Samples) -> dict[str, Any]:
    """The cycles between two scrapes: how many, their median, max and mean, and each step's."""
    cycle = _histogram(before, after, "gpufleet_scheduling_cycle_duration_seconds")
    steps = {
        step: _histogram(before, after, "gpufleet_scheduling_step_duration_seconds", step=step)
        for step in STEPS
    }
    return {
        "steady_cycles": cycle["count"],
        "steady_cycle_seconds_median": cycle["median"],
        "steady_cycle_seconds_max": cycle["max"],
        "steady_cycle_seconds_mean": cycle["mean"],
        "steady_step_seconds_median": {s: v["median"] for s, v in steps.items()},
        "steady_step_seconds_max": {s: v["max"] for s, v in steps.items()},
        "steady_step_seconds_mean": {s: v["mean"] for s, v in steps.items()},
    }


def _control_plane_rss_mb(running: clusters.RunningFleet) -> float:
    return round(
        sum(
            sum(rss_mb(clusters.cluster_processes(c.kwok_name)).values())
            for c in running.clusters.values()
        ),
        1,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _writes(samples: Samples, *, fleet_status: bool = True) -> float:
    """Write requests so far; without the fleet's own statuses when `fleet_status` is false
    (a Queue's decayed usage changes with time, so its status is rewritten every few
    seconds even on a fleet where nothing else happens)."""
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "gpufleet_api_writes_total"
        and (fleet_status or ("kind", "FleetStatus") not in labels)
    )


def _settle(port: int, progress: Progress, quiet: float = 10.0, timeout: float = 300.0) -> None:
    """Until no workload write for `quiet` seconds: the last Running records and
    explanations."""
    deadline = time.monotonic() + timeout
    last, since = _writes(_scrape(port), fleet_status=False), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1)
        now = _writes(_scrape(port), fleet_status=False)
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


def _until(what: str, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
