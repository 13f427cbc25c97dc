"""A connection to one cluster that hosts a site: watches of nodes and pods, health.

Watches run in threads with the synchronous kubernetes client and hand
records to the cache through a callback; the operator's event loop never
blocks on them. A cluster that stops answering is reported as disconnected
after `disconnect_after` seconds without a successful health probe. The hub's
connection also watches the operator namespace's Secrets (member kubeconfigs)
for the connection manager.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from gpufleet.observed.cache import FenceRecord
from gpufleet.observed.records import NodeRecord, PodRecord

log = logging.getLogger(__name__)


class ClusterSink(Protocol):
    """Where a connection reports what it sees (the state cache)."""

    def node_event(self, cluster: str, record: NodeRecord | None, name: str) -> None: ...
    def pod_event(self, cluster: str, record: PodRecord | None, key: str) -> None: ...
    def namespace_event(self, cluster: str, labels: dict[str, str] | None, name: str) -> None: ...
    def resync(self, cluster: str, what: str, keys: set[str]) -> None: ...
    def health_changed(self, cluster: str, connected: bool, reason: str, message: str) -> None: ...
    def lease_renewed(self, cluster: str, at: float) -> None: ...
    def cluster_identified(self, cluster: str, identity: str) -> None: ...
    def fence_read(self, cluster: str, record: FenceRecord | None, confirmed: bool) -> None: ...


class SecretSink(Protocol):
    """Where the hub's connection reports the operator namespace's Secrets (the manager).

    `data` is the Secret's `data`, values base64-encoded as the API serves them.
    """

    def secrets_listed(self, secrets: dict[str, dict[str, str]]) -> None: ...
    def secret_event(self, name: str, data: dict[str, str] | None) -> None: ...
    def secrets_unreadable(self, reason: str) -> None: ...


@dataclass
class Health:
    connected: bool = False
    reason: str = "NotYetProbed"
    message: str = "no health probe has completed yet"
    last_ok: float = 0.0


class ClusterConnection:
    """Watches one cluster's nodes and pods and probes its API server."""

    def __init__(
        self,
        name: str,
        api_client: Any,
        sink: ClusterSink,
        *,
        watch_namespaces: bool = False,
        secrets: tuple[str, SecretSink] | None = None,
        fence: tuple[str, str, int] | None = None,
        fence_gate: Callable[[], bool] | None = None,
        probe_interval: float = 5.0,
        disconnect_after: float = 20.0,
    ) -> None:
        self.name = name
        self.api_client = api_client
        self.sink = sink
        self.watch_namespaces = watch_namespaces
        # (namespace, sink): also watch that namespace's Secrets and report them to the sink.
        self.secrets = secrets
        # (namespace, holder, fence seconds): renew the member's fence Lease while reachable.
        self.fence = fence
        # Only the leading replica renews fence Leases (a standby's renewals would keep a
        # site unfenced that the leader cannot reach, and the leader re-places its work).
        self.fence_gate = fence_gate
        self.probe_interval = probe_interval
        self.disconnect_after = disconnect_after
        self.health = Health()
        self.identity: str | None = None  # the kube-system namespace UID, once read
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The open watch streams, so a reconnection can end them (see `_restart_watches`).
        self._streams: dict[str, Any] = {}
        self._streams_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        for target, label in (
            (self._watch_nodes, "nodes"),
            (self._watch_pods, "pods"),
            (self._probe, "probe"),
        ):
            t = threading.Thread(target=target, name=f"{self.name}-{label}", daemon=True)
            t.start()
            self._threads.append(t)
        for wanted, target, label in (
            (self.watch_namespaces, self._watch_namespaces, "namespaces"),
            (self.secrets is not None, self._watch_secrets, "secrets"),
        ):
            if wanted:
                t = threading.Thread(target=target, name=f"{self.name}-{label}", daemon=True)
                t.start()
                self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        # A replaced connection (rotated kubeconfig) must not hold its watches open for minutes.
        self._end_streams()

    # -- health --------------------------------------------------------------
    def _probe(self) -> None:
        """Probe every `probe_interval`; mark the cluster disconnected `disconnect_after`
        seconds after the first failed attempt *started*.

        Each attempt runs in a worker and is waited for one probe interval at most: a paused
        API server (connections accepted, nothing answered) or a client retrying a refused
        connection must not hold the verdict back. An attempt still running counts as a
        failure, and no second one starts beside it. So a cut is reported within
        `disconnect_after` + one probe interval.
        """
        first_failure: float | None = None
        running: Future[None] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-attempt") as pool:
            while not self._stop.is_set():
                started = time.monotonic()
                if running is None:
                    running = pool.submit(self._attempt)
                attempt = running
                try:
                    attempt.result(timeout=self.probe_interval)
                    running = None
                    if self._stop.is_set():
                        return  # replaced or removed meanwhile: its successor reports
                    first_failure = None
                    self._answered()
                except Exception as exc:  # noqa: BLE001 - any failure to answer is a failed probe
                    if attempt.done():
                        running = None
                    first_failure = first_failure if first_failure is not None else started
                    self._failed(exc, time.monotonic() - first_failure)
                self._stop.wait(max(0.0, self.probe_interval - (time.monotonic() - started)))

    def _attempt(self) -> None:
        """One probe: the API server answers; its identity once; the fence record read back
        before the Lease is renewed (a renewal would make the record stale)."""
        from kubernetes import client

        client.VersionApi(self.api_client).get_code(_request_timeout=(3, 4))
        if self.identity is None:
            ns = client.CoreV1Api(self.api_client).read_namespace(
                "kube-system", _request_timeout=(3, 4)
            )
            self.identity = str(ns.metadata.uid)
            self.sink.cluster_identified(self.name, self.identity)
        # Only the leading replica renews fence Leases (a standby's renewals would keep a
        # site unfenced that the leader cannot reach).
        if self.fence is not None and (self.fence_gate is None or self.fence_gate()):
            from gpufleet.sites.fence import read_fence, renew

            record, confirmed = read_fence(self.api_client, self.fence[0])
            self.sink.fence_read(self.name, record, confirmed)
            renew(self.api_client, *self.fence)
            self.sink.lease_renewed(self.name, time.time())

    def _answered(self) -> None:
        self.health.last_ok = time.time()
        if not self.health.connected:
            lost = self.health.reason != "NotYetProbed"
            self.health = Health(True, "Connected", "API server answers", time.time())
            self.sink.health_changed(self.name, True, "Connected", self.health.message)
            if lost:
                self._restart_watches()

    def _failed(self, exc: Exception, failing_for: float) -> None:
        what = "no answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__
        if self.health.connected and failing_for >= self.disconnect_after:
            self.health = Health(
                False,
                "APIServerUnreachable",
                f"no answer for {failing_for:.0f}s: {what}",
                self.health.last_ok,
            )
            self.sink.health_changed(self.name, False, self.health.reason, self.health.message)
        elif not self.health.connected and self.health.reason == "NotYetProbed":
            self.health = Health(False, "APIServerUnreachable", f"{what}: {exc}"[:300])
            self.sink.health_changed(self.name, False, self.health.reason, self.health.message)

    def _restart_watches(self) -> None:
        """End every open watch so each lists afresh.

        A watch opened before a partition may hang on a connection that died
        without a reset (a read can block for minutes), or may have missed what
        happened meanwhile; after the site answers again, nothing it said is
        trusted until a new list.
        """
        log.info("%s: reconnected; restarting its watches", self.name)
        self._end_streams()

    def _end_streams(self) -> None:
        with self._streams_lock:
            streams = list(self._streams.values())
        for stream in streams:
            # shutdown() also wakes a thread blocked reading; close() alone would not.
            with contextlib.suppress(Exception):
                getattr(stream, "shutdown", stream.close)()

    # -- watches -------------------------------------------------------------
    def _watch_nodes(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        self._watch_loop("nodes", core.list_node, self._node_event)

    def _watch_pods(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        self._watch_loop("pods", core.list_pod_for_all_namespaces, self._pod_event)

    def _watch_namespaces(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        self._watch_loop("namespaces", core.list_namespace, self._namespace_event)

    def _watch_secrets(self) -> None:
        from kubernetes import client

        if self.secrets is None:  # started only for the hub's connection, which has them
            return
        namespace, sink = self.secrets
        core = client.CoreV1Api(self.api_client)

        def event(kind: str, obj: dict[str, Any]) -> None:
            data = None if kind == "DELETED" else dict(obj.get("data") or {})
            sink.secret_event(obj["metadata"]["name"], data)

        def listed(items: list[dict[str, Any]]) -> None:
            sink.secrets_listed({o["metadata"]["name"]: dict(o.get("data") or {}) for o in items})

        self._watch_loop(
            "secrets",
            # Helm's release records (up to 1 MiB each, one per revision) are never kubeconfigs.
            functools.partial(
                core.list_namespaced_secret, namespace, field_selector="type!=helm.sh/release.v1"
            ),
            event,
            resync=listed,
            failed=sink.secrets_unreadable,
        )

    def _namespace_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        labels = None if kind == "DELETED" else dict(meta.get("labels") or {})
        self.sink.namespace_event(self.name, labels, meta["name"])

    def _node_event(self, kind: str, obj: dict[str, Any]) -> None:
        record = None if kind == "DELETED" else NodeRecord.from_dict(obj)
        self.sink.node_event(self.name, record, obj["metadata"]["name"])

    def _pod_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        record = None if kind == "DELETED" else PodRecord.from_dict(obj)
        self.sink.pod_event(self.name, record, f"{meta['namespace']}/{meta['name']}")

    def _watch_loop(
        self,
        what: str,
        list_fn: Callable[..., Any],
        handle: Callable[[str, dict[str, Any]], None],
        *,
        resync: Callable[[list[dict[str, Any]]], None] | None = None,
        failed: Callable[[str], None] | None = None,
    ) -> None:
        """List, then watch from the list's resourceVersion; relist on expiry or error.

        Objects are read as plain JSON: decoding thousands of pods into the client's
        model classes would cost more CPU than everything else the operator does.
        `resync` replaces the default report of a list (the sink's resync, then every
        object as added); `failed` hears why a list or watch failed.
        """
        from kubernetes.client.rest import ApiException

        while not self._stop.is_set():
            try:
                listing = json.loads(list_fn(_request_timeout=30, _preload_content=False).data)
                # A relist replaces what we knew: tell the cache which objects still exist.
                items = listing.get("items") or []
                if resync is not None:
                    resync(items)
                else:
                    self._resync(what, items, handle)
                rv = listing["metadata"]["resourceVersion"]
                stream = list_fn(
                    watch=True,
                    resource_version=rv,
                    timeout_seconds=300,
                    allow_watch_bookmarks=True,
                    _request_timeout=330,
                    _preload_content=False,
                )
                with self._streams_lock:
                    self._streams[what] = stream
                try:
                    if self._stop.is_set():
                        return  # stopped while it was opening: stop() could not end it
                    for line in stream:
                        if self._stop.is_set():
                            return
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "BOOKMARK":
                            continue
                        if event["type"] == "ERROR":
                            break  # typically 410 Gone: the list is too old, relist
                        handle(event["type"], event["object"])
                finally:
                    with self._streams_lock:
                        self._streams.pop(what, None)
                    stream.release_conn()
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("%s: watch of %s failed: %s", self.name, what, exc.reason)
                    if failed is not None:
                        failed(f"{exc.status} {exc.reason}")
                    self._stop.wait(2)
            except Exception as exc:  # noqa: BLE001 - a dropped connection must never kill the watch
                if self._stop.is_set():
                    return  # ended by stop()
                log.info(
                    "%s: watch of %s interrupted (%s); relisting",
                    self.name,
                    what,
                    type(exc).__name__,
                )
                if failed is not None:
                    failed(f"{type(exc).__name__}: {exc}"[:300])
                self._stop.wait(2)

    def _resync(
        self, what: str, items: list[dict[str, Any]], handle: Callable[[str, dict[str, Any]], None]
    ) -> None:
        def key(o: dict[str, Any]) -> str:
            meta = o["metadata"]
            return f"{meta['namespace']}/{meta['name']}" if what == "pods" else str(meta["name"])

        self.sink.resync(self.name, what, {key(o) for o in items})
        for obj in items:
            handle("ADDED", obj)
