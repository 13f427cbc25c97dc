"""Operator throughput on one cluster, next to the API server's own ceiling in the same run.

Ceiling: plain pods, already bound to a node, created as fast as 16 client threads can,
until KWOK reports them all Running. Operator: single-replica Workloads created the same
way; gpufleet admits each (a status write), creates its pod and records it Running.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.dev import clusters
from gpufleet.dev.register import register
from gpufleet.fleetfile import parse_fleet

Progress = Callable[[str], None]


def _fleet(nodes: int) -> Any:
    return parse_fleet(
        {
            "name": "bench-op",
            "clusters": [
                {
                    "name": "bench",
                    "hub": True,
                    "site": {
                        "name": "bench",
                        "type": "AIFactory",
                        "jurisdiction": "DE",
                        "regions": ["EU"],
                    },
                    "nodeGroups": [
                        {
                            "name": "bench-h100",
                            "count": nodes,
                            "acceleratorClass": "nvidia-h100",
                            "acceleratorsPerNode": 8,
                            "topology": {"nodesPerRack": 16},
                        }
                    ],
                }
            ],
        }
    )


def _parallel(items: list[Any], fn: Callable[[Any], None], workers: int = 16) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fn, items))


def _wait(
    what: str, probe: Callable[[], int], target: int, timeout: float, progress: Progress
) -> float:
    start = time.monotonic()
    last = -1
    while time.monotonic() - start < timeout:
        n = probe()
        if n != last:
            progress(f"{what}: {n}/{target}")
            last = n
        if n >= target:
            return time.monotonic()
        time.sleep(0.5)
    raise TimeoutError(f"{what}: only {last}/{target} after {timeout:.0f}s")


def measure(nodes: int = 1000, workloads: int = 2000, progress: Progress = print) -> dict[str, Any]:
    from kubernetes import client

    fleet = _fleet(nodes)
    clusters.down("bench-op")
    progress(f"bringing up one cluster with {nodes} nodes")
    running = clusters.up(fleet, source="bench", name="bench-op")
    hub = running.hub
    try:
        register(fleet, running, "gpufleet-system")
        api = hub.api_client()
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        for ns in ("ceiling", "bench"):
            core.create_namespace({"metadata": {"name": ns}})

        # 1. The API server's ceiling with plain, pre-bound pods.
        node_names = [f"bench-h100-{i:05d}" for i in range(nodes)]

        def plain(i: int) -> None:
            core.create_namespaced_pod(
                "ceiling",
                {
                    "metadata": {"name": f"p{i:05d}"},
                    "spec": {
                        "nodeName": node_names[i % nodes],
                        "containers": [
                            {
                                "name": "c",
                                "image": "pause",
                                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                            }
                        ],
                    },
                },
            )

        progress(f"ceiling: creating {workloads} plain pods")
        t0 = time.monotonic()
        _parallel(list(range(workloads)), plain)
        created = time.monotonic() - t0

        def running_pods(ns: str) -> int:
            pods = core.list_namespaced_pod(ns, _request_timeout=60).items
            return sum(1 for p in pods if p.status.phase == "Running")

        t_run = _wait(
            "ceiling pods running", lambda: running_pods("ceiling"), workloads, 600, progress
        )
        ceiling = {
            "created_per_second": round(workloads / created, 1),
            "running_per_second": round(workloads / (t_run - t0), 1),
            "seconds": round(t_run - t0, 2),
        }
        core.delete_collection_namespaced_pod("ceiling", grace_period_seconds=0)
        _wait(
            "ceiling pods removed",
            lambda: workloads - len(core.list_namespaced_pod("ceiling").items),
            workloads,
            600,
            progress,
        )

        # 2. The operator.
        custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "queues",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Queue",
                "metadata": {"name": "bench"},
                "spec": {
                    "namespaces": ["bench"],
                    "resources": [{"acceleratorClass": "nvidia-h100", "deserved": nodes * 8}],
                },
            },
        )
        log = open(clusters.state_dir() / "bench-op-operator.log", "wb")  # noqa: SIM115 - closed below
        port = _free_port()
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
        try:
            time.sleep(3)

            def workload(i: int) -> None:
                custom.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    "bench",
                    "workloads",
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Workload",
                        "metadata": {"name": f"w{i:05d}"},
                        "spec": {
                            "queue": "bench",
                            "acceleratorsPerReplica": 1,
                            "acceleratorClasses": ["nvidia-h100"],
                            "template": {"spec": {"containers": [{"name": "c", "image": "pause"}]}},
                        },
                    },
                )

            def phases() -> dict[str, int]:
                items = custom.list_namespaced_custom_object(
                    GROUP, VERSION, "bench", "workloads", _request_timeout=60
                )["items"]
                out: dict[str, int] = {}
                for w in items:
                    p = (w.get("status") or {}).get("phase", "Pending")
                    out[p] = out.get(p, 0) + 1
                return out

            progress(f"operator: creating {workloads} workloads")
            t0 = time.monotonic()
            _parallel(list(range(workloads)), workload)
            submitted = time.monotonic() - t0
            t_adm = _wait(
                "workloads admitted",
                lambda: (lambda p: p.get("Admitted", 0) + p.get("Running", 0))(phases()),
                workloads,
                900,
                progress,
            )
            t_run = _wait(
                "workloads running", lambda: phases().get("Running", 0), workloads, 900, progress
            )
            writes = _writes_by_kind(port)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
        operator: dict[str, Any] = {
            "submitted_per_second": round(workloads / submitted, 1),
            "admitted_per_second": round(workloads / (t_adm - t0), 1),
            "running_per_second": round(workloads / (t_run - t0), 1),
            "seconds_to_all_running": round(t_run - t0, 2),
            # The operator's own write requests (its metrics), over the whole run.
            "api_writes": writes,
            "api_writes_per_workload": round(sum(writes.values()) / workloads, 2),
        }
        api.close()
        return {
            "nodes": nodes,
            "workloads": workloads,
            "api_server_ceiling": ceiling,
            "operator": operator,
            "ratio_running_vs_ceiling": round(
                operator["running_per_second"] / ceiling["running_per_second"], 3
            ),
        }
    finally:
        clusters.down("bench-op")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _writes_by_kind(port: int) -> dict[str, int]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as rsp:
        text = rsp.read().decode()
    return {
        s.labels["kind"]: int(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gpufleet_api_writes_total"
    }
