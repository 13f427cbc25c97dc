"""Every pod of every cluster of a fleet, as its watches saw it: the record the hand-off is
judged on.

A thread per cluster lists and then watches all pods. For each pod it keeps when it
was created and deleted, with which grace period, when it was gone, and each
cluster's resourceVersion at those moments: resourceVersions of one cluster are
its etcd's revisions, so "created after the victim was gone" is read from the
cluster's own order of events, not from clocks. A pod whose `status.reason` starts
with `OutOf` (refused by a kubelet) is added to `refused` the moment it is seen.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from gpufleet.dev.clusters import RunningFleet


@dataclass
class PodEntry:
    cluster: str
    key: str
    uid: str
    node: str | None
    workload: str | None
    created_at: float  # creationTimestamp (whole seconds)
    created_rv: int  # the resourceVersion of the first version seen
    seen_at: float  # when the watch first saw it (this machine's clock)
    deletion_grace: int | None = None  # deletionGracePeriodSeconds
    delete_asked_at: float | None = None  # when the watch first saw it Terminating
    gone_at: float | None = None  # when the watch saw it deleted
    gone_rv: int | None = None
    reason: str | None = None


@dataclass
class PodLog:
    running: RunningFleet
    pods: dict[tuple[str, str], PodEntry] = field(default_factory=dict)  # (cluster, uid)
    refused: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        ready = []
        for name, cluster in self.running.clusters.items():
            listed = threading.Event()
            t = threading.Thread(
                target=self._watch, args=(name, cluster, listed), daemon=True, name=f"podlog-{name}"
            )
            t.start()
            self._threads.append(t)
            ready.append(listed)
        for listed in ready:
            if not listed.wait(60):
                raise AssertionError("the pod log could not list the fleet's pods within 60s")

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _watch(self, name: str, cluster: Any, listed: threading.Event) -> None:
        api = cluster.api_client()
        core = client.CoreV1Api(api)
        try:
            while not self._stop.is_set():
                try:
                    items = core.list_pod_for_all_namespaces(_request_timeout=30)
                    for pod in items.items:
                        self._seen(name, "ADDED", pod)
                    listed.set()
                    rv = items.metadata.resource_version
                    w = watch.Watch()
                    for event in w.stream(
                        core.list_pod_for_all_namespaces,
                        resource_version=rv,
                        timeout_seconds=5,  # lets `stop` end the thread within seconds
                        _request_timeout=30,
                    ):
                        self._seen(name, event["type"], event["object"])
                        rv = event["object"].metadata.resource_version
                        if self._stop.is_set():
                            break
                except Exception:  # noqa: BLE001 - a dropped watch lists again; nothing is lost
                    time.sleep(0.5)
        finally:
            api.close()

    def _seen(self, cluster: str, kind: str, pod: Any) -> None:
        meta, status = pod.metadata, pod.status
        now = time.time()
        rv = int(meta.resource_version or 0)
        labels = meta.labels or {}
        wl = labels.get("gpufleet.io/workload")
        with self._lock:
            entry = self.pods.get((cluster, meta.uid))
            if entry is None:
                entry = PodEntry(
                    cluster=cluster,
                    key=f"{meta.namespace}/{meta.name}",
                    uid=meta.uid,
                    node=pod.spec.node_name,
                    workload=f"{labels.get('gpufleet.io/workload-namespace')}/{wl}" if wl else None,
                    created_at=meta.creation_timestamp.timestamp(),
                    created_rv=rv,
                    seen_at=now,
                )
                self.pods[(cluster, meta.uid)] = entry
            if meta.deletion_timestamp is not None and entry.delete_asked_at is None:
                entry.delete_asked_at = now
                entry.deletion_grace = meta.deletion_grace_period_seconds
            reason = status.reason if status is not None else None
            if reason and entry.reason != reason:
                entry.reason = reason
                if reason.startswith("OutOf"):
                    self.refused.append((cluster, entry.key, entry.node, reason))
            if kind == "DELETED":
                entry.gone_at = now
                entry.gone_rv = rv

    def of(self, workload: str) -> list[PodEntry]:
        with self._lock:
            return [e for e in self.pods.values() if e.workload == workload]

    def write(self, path: Path) -> None:
        with self._lock:
            body = {
                "fleet": self.running.name,
                "refused": self.refused,
                "pods": [asdict(e) for e in self.pods.values()],
            }
        path.write_text(json.dumps(body, indent=1))
