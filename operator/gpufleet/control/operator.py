"""Bootstrapping the operator: clients, the cache, the connections, metrics, the loop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from gpufleet.api.v1alpha1 import GROUP, KIND_INFO, VERSION, Kind
from gpufleet.control.elector import LeaderElector
from gpufleet.control.events import EventCorrelator
from gpufleet.control.leader import LEASE_NAME, ElectionConfig
from gpufleet.control.loop import SchedulingLoop, SummaryView
from gpufleet.control.writer import Writer
from gpufleet.metrics import MetricsServer, OperatorMetrics, create_registry, serve
from gpufleet.observed.cache import HUB, FleetCache
from gpufleet.sites.manager import ConnectionManager

log = logging.getLogger(__name__)

# Objects per page of a LIST: bounded responses for the API server and for us.
LIST_PAGE = 500


@dataclass(frozen=True)
class OperatorConfig:
    namespace: str = "gpufleet-system"
    origin: str = "gpufleet"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 8080
    resync_seconds: float = 5.0
    kubeconfig: str | None = None
    # A member is marked disconnected after this long without an answer (probes every 5 s).
    disconnect_after_seconds: float = 20.0
    # The member's agent stops our pods after this long without a lease renewal...
    fence_seconds: int = 60
    # ...and the operator re-places them only after fence + grace (+ a probe's worth of slack).
    site_loss_grace_seconds: float = 30.0
    # Leader election among replicas (client-go's defaults). Off: this process always writes,
    # which is only safe when nothing else runs a loop against the same hub.
    leader_elect: bool = True
    leader_lease: str = LEASE_NAME
    # Unique per process: a restarted replica must not inherit its predecessor's lease.
    leader_identity: str = ""
    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0
    # The operator's budget of new Events (control/events.py): a steady rate and a burst.
    event_qps: float = 20.0
    event_burst: int = 200


def default_identity() -> str:
    """client-go's choice: the host (the pod's name in Kubernetes) and a random suffix."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:8]}"


def hub_client(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    if kubeconfig:
        api = config.new_client_from_config(config_file=kubeconfig)
    else:
        try:
            config.load_incluster_config()
            api = client.ApiClient()
        except config.ConfigException:
            api = config.new_client_from_config()
    # Many apply threads share the client; the default pool of 4 would serialise them.
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
    return api


class Operator:
    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.cache = FleetCache()
        self.wake = asyncio.Event()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.server: MetricsServer | None = None
        self.loop: SchedulingLoop | None = None
        self.connections: ConnectionManager | None = None
        self.elector: LeaderElector | None = None
        self.identity = config.leader_identity or default_identity()
        self.started_at = time.time()

    async def start(self) -> None:
        self.cache.bind(asyncio.get_running_loop(), self.wake)
        api = await asyncio.to_thread(hub_client, self.config.kubeconfig)
        # The first cycle must see every object: a workload it does not know about would
        # make its pods look stray. Kopf's watch keeps the cache current from here on.
        await asyncio.to_thread(self._list_all, api)
        view = SummaryView()
        registry, metrics = create_registry(view)
        metrics.set_leader(self.identity, False)
        if self.config.leader_elect:
            # Elected on a client of its own: the lease's short requests never queue behind
            # the loop's bursts of writes in a shared connection pool.
            self.elector = LeaderElector(
                await asyncio.to_thread(hub_client, self.config.kubeconfig),
                ElectionConfig(
                    namespace=self.config.namespace,
                    name=self.config.leader_lease,
                    identity=self.identity,
                    lease_duration=self.config.lease_duration_seconds,
                    renew_deadline=self.config.renew_deadline_seconds,
                    retry_period=self.config.retry_period_seconds,
                ),
                on_change=partial(self._leadership_changed, asyncio.get_running_loop(), metrics),
            )
        self.connections = ConnectionManager(
            api,
            self.config.namespace,
            self.cache,
            origin=self.config.origin,
            fence_seconds=self.config.fence_seconds,
            disconnect_after=self.config.disconnect_after_seconds,
            fence_gate=self.elector.may_write if self.elector is not None else None,
        )
        self.connections.start_hub()
        if self.elector is None:
            metrics.set_leader(self.identity, True)
        else:
            self.elector.start()
        self.loop = SchedulingLoop(
            self.cache,
            self.connections,
            Writer(api, on_write=metrics.count_write),
            origin=self.config.origin,
            metrics=metrics,
            view=view,
            resync_seconds=self.config.resync_seconds,
            site_loss_after=self.config.fence_seconds + self.config.site_loss_grace_seconds + 5.0,
            gate=self.elector,
            catch_up=partial(self._catch_up, api) if self.elector is not None else None,
            events=EventCorrelator(qps=self.config.event_qps, burst=self.config.event_burst),
        )
        if self.config.metrics_port >= 0:
            self.server = serve(
                registry,
                self.config.metrics_host,
                self.config.metrics_port,
                health=self.healthy,
                ready=self.ready,
            )
            log.info("metrics on http://%s:%d/metrics", self.config.metrics_host, self.server.port)
        self.task = asyncio.create_task(
            self.loop.run(self.wake, self.stop), name="gpufleet-scheduling-loop"
        )

    def _list_all(self, api: Any) -> int:
        """Quorum-read every gpufleet object and bring the cache up to it; how many changed.

        Run at start (the first cycle must see every object: a workload it does not know
        about would make its pods look stray) and by a replica that has just taken the lead:
        its watches may lag the old leader's last writes, and a queue's usage counted from
        a lagging cache would admit past the queue's limit. Kopf's watch keeps the cache
        current between the two.
        """
        from kubernetes import client

        custom = client.CustomObjectsApi(api)
        changed = 0
        self.cache.begin_catch_up()
        try:
            for kind in KIND_INFO.values():
                items, listed_at = _list_kind(custom, kind)
                changed += self.cache.catch_up(kind.name, items, listed_at)
        finally:
            self.cache.end_catch_up()
        return changed

    def _catch_up(self, api: Any) -> None:
        started = time.monotonic()
        changed = self._list_all(api)
        log.info(
            "caught up with the API server before leading: %d objects changed, %.2fs",
            changed,
            time.monotonic() - started,
        )

    def _leadership_changed(
        self, loop: asyncio.AbstractEventLoop, metrics: OperatorMetrics, leading: bool
    ) -> None:
        """From the election's thread: account for a takeover or a loss, wake the loop."""
        metrics.set_leader(self.identity, leading)
        if leading:
            self.cache.restart_fence_clocks(time.time())
        elif self.loop is not None:
            self.loop.lead_lost()
        # The loop switches between cycles and warm cycles at its next turn: now, not at resync.
        loop.call_soon_threadsafe(self.wake.set)

    def healthy(self) -> bool:
        if self.task is None or self.task.done() or self.loop is None:
            return False
        last = self.loop.last_cycle_at or self.started_at
        return time.time() - last < max(60.0, 6 * self.config.resync_seconds)

    def ready(self) -> tuple[bool, str]:
        """Ready once its caches are synced and it has run a cycle, leader or standby.

        Standbys are ready too: they serve metrics and probes, and a rollout or a
        PodDisruptionBudget that waited for a standby to become ready would wait for the
        leader to die. Who leads is in the answer's text and in `gpufleet_leader`.
        """
        loop = self.loop
        if not self.healthy() or loop is None or loop.cycles + loop.warm_cycles == 0:
            return False, "starting"
        hub = self.cache.clusters.get(HUB)
        if hub is None or not {"nodes", "pods"} <= hub.synced:
            return False, "hub caches not synced"
        if self.elector is None:
            return True, f"leading as {self.identity} (no leader election)"
        status = self.elector.status()
        if status.leading:
            return True, f"leading as {self.identity}"
        return True, f"standby {self.identity}; leader: {status.leader or 'none'}"

    async def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()
        if self.elector is not None:
            # After the loop's last write: hand the lease over so a standby need not wait it out.
            await asyncio.to_thread(self.elector.stop)
        if self.connections is not None:
            self.connections.stop()
        if self.server is not None:
            self.server.close()


def _list_kind(custom: Any, kind: Kind, attempts: int = 3) -> tuple[dict[str, dict[str, Any]], int]:
    """Every object of `kind` by key, and the LIST's resourceVersion (0 if not a number).

    Pages of one LIST share its snapshot (the continue token pins it). A token that
    expired (410 Gone: the snapshot was compacted away) starts the LIST again."""
    from kubernetes.client.exceptions import ApiException

    for attempt in range(attempts):
        items: dict[str, dict[str, Any]] = {}
        listed_at = 0
        token: str | None = None
        try:
            while True:
                page = custom.list_cluster_custom_object(
                    GROUP,
                    VERSION,
                    kind.plural,
                    limit=LIST_PAGE,
                    _request_timeout=60,
                    **({"_continue": token} if token else {}),
                )
                for item in page.get("items", []):
                    item.setdefault("kind", kind.name)
                    items[kind.key(item["metadata"])] = item
                meta = page.get("metadata", {})
                if not listed_at:
                    version = str(meta.get("resourceVersion") or "")
                    listed_at = int(version) if version.isdigit() else 0
                token = meta.get("continue")
                if not token:
                    return items, listed_at
        except ApiException as exc:
            if exc.status != 410 or attempt == attempts - 1:
                raise
            log.info("the LIST of %s expired mid-way; listing again", kind.plural)
    raise AssertionError("unreachable")
