"""Running the real operator as a process against a real multi-cluster fleet, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, watch

from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.dev.clusters import Cluster, RunningFleet

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5
) -> T:
    """Poll until `probe` returns something truthy; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class OperatorProcess:
    """`gpufleet run` in a subprocess, so tests can kill -9 it and start it again."""

    def __init__(self, hub: Cluster, log_dir: Path, namespace: str = "gpufleet-system") -> None:
        self.hub = hub
        self.namespace = namespace
        self.log_dir = log_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, extra: list[str] | None = None) -> None:
        self.starts += 1
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpufleet.cli",
                "run",
                "--kubeconfig",
                str(self.hub.kubeconfig),
                "--namespace",
                self.namespace,
                "--metrics-port",
                str(self.port),
                "--resync",
                "2",
                *(extra or []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_for("the operator to become ready", self.ready, timeout=60)

    def ready(self) -> bool:
        import urllib.request

        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the operator exited; see {self.log_dir}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as rsp:
                return bool(rsp.status == 200)
        except OSError:
            return False

    def readyz(self) -> str:
        """The readiness answer's text ("ok: leading as …", "ok: standby …"), "" if none."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as rsp:
                return str(rsp.read().decode()).strip()
        except OSError:
            return ""

    def leads(self) -> bool:
        return (
            self.proc is not None
            and self.proc.poll() is None
            and (self.readyz().startswith("ok: leading"))
        )

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as rsp:
            return str(rsp.read().decode())

    def cycles(self) -> int:
        """Scheduling cycles this process has completed (gpufleet_scheduling_cycles_total)."""
        for line in self.metrics().splitlines():
            if line.startswith("gpufleet_scheduling_cycles_total "):
                return int(float(line.split()[1]))
        raise AssertionError("/metrics has no gpufleet_scheduling_cycles_total")

    def pause(self) -> None:
        """SIGSTOP: the process holds still (its watches and requests wait) until resume()."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Fleet:
    """Client-side helpers over a running fleet with gpufleet registered."""

    def __init__(self, running: RunningFleet) -> None:
        self.running = running
        self.hub = running.hub
        self.api = self.hub.api_client()
        self.custom = client.CustomObjectsApi(self.api)
        self.clients = {name: c.api_client() for name, c in running.clusters.items()}

    def apply(self, *objects: dict[str, Any]) -> None:
        self.hub.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(list(objects)))

    def workload(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "workloads", name)
        )

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        return list(
            self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "workloads")[
                "items"
            ]
        )

    def queue(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_cluster_custom_object(GROUP, VERSION, "queues", name))

    def site(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_cluster_custom_object(GROUP, VERSION, "sites", name))

    def phase(self, namespace: str, name: str) -> str:
        return str((self.workload(namespace, name).get("status") or {}).get("phase", "Pending"))

    def wait_phase(
        self, namespace: str, name: str, phases: set[str], timeout: float = 60
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            w = self.workload(namespace, name)
            return w if (w.get("status") or {}).get("phase") in phases else None

        return wait_for(f"workload {namespace}/{name} to reach {sorted(phases)}", probe, timeout)

    def pods(
        self,
        cluster: str,
        namespace: str | None = None,
        selector: str = "gpufleet.io/managed-by=gpufleet",
    ) -> list[Any]:
        core = client.CoreV1Api(self.clients[cluster])
        if namespace is None:
            return list(core.list_pod_for_all_namespaces(label_selector=selector).items)
        return list(core.list_namespaced_pod(namespace, label_selector=selector).items)

    def first_placement(self, namespace: str, timeout: float = 60) -> str:
        """Watch the namespace's workloads until one has a placement recorded; its name.
        A watch, not a poll: it returns within milliseconds of the write."""
        w = watch.Watch()
        try:
            for event in w.stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "workloads",
                timeout_seconds=int(timeout),
            ):
                obj = event["object"]
                if (obj.get("status") or {}).get("placement"):
                    return str(obj["metadata"]["name"])
        finally:
            w.stop()
        raise AssertionError(f"no placement recorded in {namespace} within {timeout:.0f}s")

    def workload_pods(self, namespace: str, name: str) -> dict[str, list[Any]]:
        sel = f"gpufleet.io/workload={name},gpufleet.io/workload-namespace={namespace}"
        return {c: self.pods(c, None, sel) for c in self.clients}

    def nodes(self, cluster: str) -> dict[str, dict[str, str]]:
        core = client.CoreV1Api(self.clients[cluster])
        return {n.metadata.name: dict(n.metadata.labels) for n in core.list_node().items}

    def finish_pods(self, namespace: str, name: str, phase: str = "Succeeded") -> int:
        """Play the kubelet: report the workload's pods as finished."""
        done = 0
        for cluster, pods in self.workload_pods(namespace, name).items():
            core = client.CoreV1Api(self.clients[cluster])
            for pod in pods:
                if pod.status.phase in ("Succeeded", "Failed"):
                    continue
                body = {
                    "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False"}]}
                }
                core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)
                done += 1
        return done

    def statuses(self, namespace: str) -> dict[str, str]:
        """Each workload's phase and why (its Admitted condition): what a failing wait shows."""
        out = {}
        for w in self.workloads(namespace):
            status = w.get("status") or {}
            why = [
                f"{c.get('reason')}: {c.get('message')}"
                for c in status.get("conditions") or []
                if c.get("type") == "Admitted"
            ]
            out[w["metadata"]["name"]] = f"{status.get('phase')} {'; '.join(why)}"
        return out

    def delete_all_workloads(self, namespace: str) -> None:
        self.custom.delete_collection_namespaced_custom_object(
            GROUP, VERSION, namespace, "workloads"
        )

    def close(self) -> None:
        self.api.close()
        for c in self.clients.values():
            c.close()


def queue_obj(
    name: str, namespaces: list[str], resources: list[dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    # A test lasts minutes: work may be preempted at once and a starved queue reclaims at
    # once and all of its deserved share (the production defaults, 600 s, 900 s and a 0.2
    # margin, are the scenario tests' business).
    preemption = {
        "minRuntimeSeconds": 0,
        "reclaimDelaySeconds": 0,
        "reclaimMargin": 0,
        **spec.pop("preemption", {}),
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Queue",
        "metadata": {"name": name},
        "spec": {
            "namespaces": namespaces,
            "resources": resources,
            "preemption": preemption,
            **spec,
        },
    }


def workload_obj(
    namespace: str,
    name: str,
    queue: str,
    *,
    replicas: int = 1,
    gpus: int = 1,
    classes: tuple[str, ...] = ("nvidia-h100", "nvidia-h200"),
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "queue": queue,
            "replicas": replicas,
            "acceleratorsPerReplica": gpus,
            "acceleratorClasses": list(classes),
            "template": {
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}
            },
            **spec,
        },
    }
