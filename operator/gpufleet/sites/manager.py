"""Which clusters the operator is connected to: the hub, and one per member Site.

A member Site names a kubeconfig Secret in the operator's own namespace (and
only there: the operator reads no other Secret). The hub's connection watches
that namespace's Secrets and reports them here, so the scheduling loop never
reads a Secret: `reconcile` works from what the watch has delivered. A member
is connected again when its kubeconfig changes, and disconnected when its
Secret or key goes away. A missing or broken Secret is reported on the Site as
a disconnected connection with the reason.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from gpufleet.api.v1alpha1 import SecretKeyRef, Site
from gpufleet.observed.cache import HUB
from gpufleet.sites.connection import ClusterConnection, ClusterSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Failure:
    reason: str
    message: str


@dataclass(frozen=True)
class _Kubeconfig:
    data: str  # base64, as in the Secret


class ConnectionManager:
    """The connections, kept in line with the member Sites and their kubeconfig Secrets.

    Called from two threads: the scheduling loop (`reconcile`, with the Sites) and the
    hub's Secret watch (`secrets_listed`, `secret_event`, `secrets_unreadable`). Neither
    does network I/O under the lock: connecting only builds a client and starts threads.
    """

    def __init__(
        self,
        hub_client: Any,
        namespace: str,
        sink: ClusterSink,
        *,
        origin: str = "gpufleet",
        fence_seconds: int = 60,
        disconnect_after: float = 20.0,
        fence_gate: Callable[[], bool] | None = None,
    ) -> None:
        self.fence_gate = fence_gate
        self.origin = origin
        self.fence_seconds = fence_seconds
        self.disconnect_after = disconnect_after
        self.hub_client = hub_client
        self.namespace = namespace
        self.sink = sink
        self.connections: dict[str, ClusterConnection] = {}
        self._lock = threading.Lock()
        self._stopped = False
        # Member Site → its kubeconfig reference, as of the last `reconcile`.
        self._wanted: dict[str, SecretKeyRef] = {}
        # Secret name → data; None until the watch's first list.
        self._secrets: dict[str, dict[str, str]] | None = None
        self._unreadable: str | None = None
        # Member Site → what its connection (or its reported failure) was made from, so each
        # change is acted on once and an unchanged Secret costs a comparison per cycle.
        self._acted: dict[str, _Failure | _Kubeconfig] = {}

    def start_hub(self) -> None:
        with self._lock:
            if HUB not in self.connections:
                conn = ClusterConnection(
                    HUB,
                    self.hub_client,
                    self.sink,
                    watch_namespaces=True,
                    secrets=(self.namespace, self),
                )
                conn.start()
                self.connections[HUB] = conn

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for conn in self.connections.values():
                conn.stop()

    # -- from the scheduling loop ----------------------------------------------------
    def reconcile(self, sites: dict[str, Site]) -> None:
        wanted = {
            name: s.spec.nodes.member.kubeconfig_secret_ref
            for name, s in sites.items()
            if s.spec.nodes.member is not None
        }
        with self._lock:
            for name in [n for n in self.connections if n != HUB and n not in wanted]:
                self.connections.pop(name).stop()
                self.sink.health_changed(name, False, "SiteRemoved", "the Site no longer exists")
            for name in [n for n in self._acted if n not in wanted]:
                del self._acted[name]
            self._wanted = wanted
            self._sync()

    # -- from the hub's Secret watch (SecretSink) --------------------------------------
    def secrets_listed(self, secrets: dict[str, dict[str, str]]) -> None:
        with self._lock:
            self._secrets = dict(secrets)
            self._unreadable = None
            self._sync()

    def secret_event(self, name: str, data: dict[str, str] | None) -> None:
        with self._lock:
            if self._secrets is None:
                return  # the first list has not arrived; it will carry this Secret
            if data is None:
                self._secrets.pop(name, None)
            else:
                self._secrets[name] = data
            self._sync()

    def secrets_unreadable(self, reason: str) -> None:
        with self._lock:
            # Once listed, a failing watch keeps what it delivered: it relists by itself.
            if self._secrets is None:
                self._unreadable = reason
                self._sync()

    # -- under the lock -------------------------------------------------------------------
    def _sync(self) -> None:
        if self._stopped:
            return
        for name, ref in self._wanted.items():
            wanted = self._wanted_state(ref)
            if wanted is None or self._acted.get(name) == wanted:
                continue
            self._acted[name] = wanted
            if isinstance(wanted, _Failure):
                self._fail(name, wanted)
            else:
                self._connect(name, ref, wanted)

    def _wanted_state(self, ref: SecretKeyRef) -> _Failure | _Kubeconfig | None:
        """What the member's connection should be made from; None: not known yet."""
        where = f"Secret {self.namespace}/{ref.name}"
        if self._secrets is None:
            if self._unreadable is None:
                return None
            return _Failure(
                "KubeconfigSecretUnreadable",
                f"cannot read the Secrets of {self.namespace}: {self._unreadable}",
            )
        secret = self._secrets.get(ref.name)
        if secret is None:
            return _Failure(
                "KubeconfigSecretMissing",
                f"{where} does not exist; create it with the member's kubeconfig under key {ref.key!r}",
            )
        data = secret.get(ref.key)
        if data is None:
            return _Failure("KubeconfigKeyMissing", f"{where} has no key {ref.key!r}")
        return _Kubeconfig(data)

    def _connect(self, name: str, ref: SecretKeyRef, kubeconfig: _Kubeconfig) -> None:
        try:
            client = _client_from_kubeconfig(base64.b64decode(kubeconfig.data).decode())
        except Exception as exc:
            # Retrying the same text would fail the same way: wait for the Secret to change.
            self._fail(
                name,
                _Failure(
                    "KubeconfigInvalid",
                    f"Secret {self.namespace}/{ref.name} key {ref.key!r}: {_reason(exc)}",
                ),
            )
            return
        old = self.connections.pop(name, None)
        if old is not None:
            log.info("%s: its kubeconfig changed; connecting again", name)
            old.stop()
        conn = ClusterConnection(
            name,
            client,
            self.sink,
            fence=(self.namespace, self.origin, self.fence_seconds),
            fence_gate=self.fence_gate,
            disconnect_after=self.disconnect_after,
            # Dispatch reads each member namespace's Pod Security labels (docs/security.md).
            watch_namespaces=True,
        )
        conn.start()
        self.connections[name] = conn

    def _fail(self, name: str, failure: _Failure) -> None:
        old = self.connections.pop(name, None)
        if old is not None:
            old.stop()
        self.sink.health_changed(name, False, failure.reason, failure.message)


def _client_from_kubeconfig(text: str) -> Any:
    from kubernetes import config

    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not data.get("clusters"):
        raise ValueError("not a kubeconfig (no clusters)")
    api = config.new_client_from_config_dict(data)
    # As the hub's: the loop's apply and pod threads share the client (urllib3's default of
    # 10 connections would drop and reopen connections under a burst).
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
    return api


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"[:300]
