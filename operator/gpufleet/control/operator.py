"""Bootstrapping the operator: clients, the cache, the connections, metrics, the loop."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from gpufleet.api.v1alpha1 import GROUP, KIND_INFO, VERSION
from gpufleet.control.loop import SchedulingLoop, SummaryView
from gpufleet.control.writer import Writer
from gpufleet.metrics import MetricsServer, create_registry, serve
from gpufleet.observed.cache import HUB, FleetCache
from gpufleet.sites.manager import ConnectionManager

log = logging.getLogger(__name__)


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
        self.started_at = time.time()

    async def start(self) -> None:
        self.cache.bind(asyncio.get_running_loop(), self.wake)
        api = await asyncio.to_thread(hub_client, self.config.kubeconfig)
        # The first cycle must see every object: a workload it does not know about would
        # make its pods look stray. Kopf's watch keeps the cache current from here on.
        await asyncio.to_thread(self._list_all, api)
        self.connections = ConnectionManager(
            api,
            self.config.namespace,
            self.cache,
            origin=self.config.origin,
            fence_seconds=self.config.fence_seconds,
            disconnect_after=self.config.disconnect_after_seconds,
        )
        self.connections.start_hub()
        view = SummaryView()
        registry, metrics = create_registry(view)
        self.loop = SchedulingLoop(
            self.cache,
            self.connections,
            Writer(api),
            origin=self.config.origin,
            metrics=metrics,
            view=view,
            resync_seconds=self.config.resync_seconds,
            site_loss_after=self.config.fence_seconds + self.config.site_loss_grace_seconds + 5.0,
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

    def _list_all(self, api: Any) -> None:
        from kubernetes import client

        custom = client.CustomObjectsApi(api)
        for kind in KIND_INFO.values():
            listing = custom.list_cluster_custom_object(
                GROUP, VERSION, kind.plural, _request_timeout=60
            )
            for item in listing.get("items", []):
                item.setdefault("kind", kind.name)
                self.cache.put_object(kind.name, kind.key(item["metadata"]), item)

    def healthy(self) -> bool:
        if self.task is None or self.task.done() or self.loop is None:
            return False
        last = self.loop.last_cycle_at or self.started_at
        return time.time() - last < max(60.0, 6 * self.config.resync_seconds)

    def ready(self) -> bool:
        if not self.healthy() or self.loop is None or self.loop.cycles == 0:
            return False
        hub = self.cache.clusters.get(HUB)
        return hub is not None and {"nodes", "pods"} <= hub.synced

    async def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()
        if self.connections is not None:
            self.connections.stop()
        if self.server is not None:
            self.server.close()
