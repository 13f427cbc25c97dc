"""Which clusters the operator is connected to: the hub, and one per member Site.

A member Site names a kubeconfig Secret in the operator's own namespace (and
only there: the operator reads no other Secret). A missing or broken Secret
is reported on the Site as a disconnected connection with the reason.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import yaml

from gpufleet.api.v1alpha1 import Site
from gpufleet.observed.cache import HUB
from gpufleet.sites.connection import ClusterConnection, ClusterSink

log = logging.getLogger(__name__)


class ConnectionManager:
    def __init__(
        self,
        hub_client: Any,
        namespace: str,
        sink: ClusterSink,
        *,
        retry_seconds: float = 10.0,
        origin: str = "gpufleet",
        fence_seconds: int = 60,
        disconnect_after: float = 20.0,
    ) -> None:
        self.origin = origin
        self.fence_seconds = fence_seconds
        self.disconnect_after = disconnect_after
        self.hub_client = hub_client
        self.namespace = namespace
        self.sink = sink
        self.retry_seconds = retry_seconds
        self.connections: dict[str, ClusterConnection] = {}
        self._secret_versions: dict[str, str] = {}
        self._failed_at: dict[str, float] = {}

    def start_hub(self) -> None:
        if HUB not in self.connections:
            conn = ClusterConnection(HUB, self.hub_client, self.sink, watch_namespaces=True)
            conn.start()
            self.connections[HUB] = conn

    def stop(self) -> None:
        for conn in self.connections.values():
            conn.stop()

    def reconcile(self, sites: dict[str, Site]) -> None:
        wanted = {name: s for name, s in sites.items() if s.spec.nodes.member is not None}
        for name in list(self.connections):
            if name != HUB and name not in wanted:
                self.connections.pop(name).stop()
                self.sink.health_changed(name, False, "SiteRemoved", "the Site no longer exists")
        for name, site in wanted.items():
            self._ensure(name, site)

    def _ensure(self, name: str, site: Site) -> None:
        member = site.spec.nodes.member
        if member is None:  # reconcile passes member sites only
            return
        ref = member.kubeconfig_secret_ref
        if (
            name not in self.connections
            and time.monotonic() - self._failed_at.get(name, -1e9) < self.retry_seconds
        ):
            return
        try:
            secret = self._read_secret(ref.name)
        except Exception as exc:
            self._fail(
                name,
                "KubeconfigSecretUnreadable",
                f"cannot read Secret {self.namespace}/{ref.name}: {_reason(exc)}",
            )
            return
        if secret is None:
            self._fail(
                name,
                "KubeconfigSecretMissing",
                f"Secret {self.namespace}/{ref.name} does not exist; create it with the member's kubeconfig under key {ref.key!r}",
            )
            return
        version = secret.metadata.resource_version
        if name in self.connections and self._secret_versions.get(name) == version:
            return
        data = (secret.data or {}).get(ref.key)
        if data is None:
            self._fail(
                name,
                "KubeconfigKeyMissing",
                f"Secret {self.namespace}/{ref.name} has no key {ref.key!r}",
            )
            return
        try:
            client = _client_from_kubeconfig(base64.b64decode(data).decode())
        except Exception as exc:
            self._fail(
                name,
                "KubeconfigInvalid",
                f"Secret {self.namespace}/{ref.name} key {ref.key!r}: {_reason(exc)}",
            )
            return
        old = self.connections.pop(name, None)
        if old is not None:
            old.stop()
        conn = ClusterConnection(
            name,
            client,
            self.sink,
            fence=(self.namespace, self.origin, self.fence_seconds),
            disconnect_after=self.disconnect_after,
            # Dispatch reads each member namespace's Pod Security labels (docs/security.md).
            watch_namespaces=True,
        )
        conn.start()
        self.connections[name] = conn
        self._secret_versions[name] = version
        self._failed_at.pop(name, None)

    def _fail(self, name: str, reason: str, message: str) -> None:
        old = self.connections.pop(name, None)
        if old is not None:
            old.stop()
        self._failed_at[name] = time.monotonic()
        self.sink.health_changed(name, False, reason, message)

    def _read_secret(self, name: str) -> Any:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            return client.CoreV1Api(self.hub_client).read_namespaced_secret(
                name, self.namespace, _request_timeout=10
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


def _client_from_kubeconfig(text: str) -> Any:
    from kubernetes import config

    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not data.get("clusters"):
        raise ValueError("not a kubeconfig (no clusters)")
    return config.new_client_from_config_dict(data)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"[:300]
