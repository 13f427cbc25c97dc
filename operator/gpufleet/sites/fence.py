"""Fencing a cut-off site, so that a workload never runs at two sites at once.

The operator renews a Lease in every member cluster while it can reach it. An
agent inside the member cluster (`gpufleet agent`, the same image) watches that
Lease with its own clock: when it has *seen* no renewal for the fence time, it
deletes the operator's pods there and records that in the ConfigMap
`gpufleet-fence` (the Lease's resourceVersion it fenced after, and whether no
pod of ours was left running). Silence counts only while the agent can read
its own API server: when it cannot, the operator cannot renew either, and
that is not the operator's silence. The operator reads the record back before
each renewal; a complete record made after the Lease's last renewal is the
member's confirmation that the pods are stopped. Neither side compares the
other's clock: each measures the silence it saw itself.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from gpufleet.observed.cache import FenceRecord
from gpufleet.observed.records import LABEL_MANAGED, LABEL_ORIGIN, MANAGED_BY

log = logging.getLogger(__name__)

LEASE_NAME = "gpufleet-fence"
RECORD_NAME = "gpufleet-fence"  # the agent's ConfigMap beside the Lease


def read_fence(api_client: Any, namespace: str) -> tuple[FenceRecord | None, bool]:
    """The agent's fence record, and whether it confirms a fence after the Lease's last
    renewal (its leaseVersion is the Lease's current resourceVersion, and it is complete)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        cm = client.CoreV1Api(api_client).read_namespaced_config_map(
            RECORD_NAME, namespace, _request_timeout=(3, 4)
        )
    except ApiException as exc:
        if exc.status == 404:
            return None, False
        raise
    data = cm.data or {}
    record = FenceRecord(
        lease_version=str(data.get("leaseVersion", "")),
        fenced_at=str(data.get("fencedAt", "")),
        complete=data.get("complete") == "true",
    )
    try:
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
            LEASE_NAME, namespace, _request_timeout=(3, 4)
        )
    except ApiException as exc:
        if exc.status == 404:
            return record, False
        raise
    current = lease.metadata.resource_version
    return record, record.complete and bool(
        record.lease_version
    ) and record.lease_version == current


def renew(api_client: Any, namespace: str, holder: str, fence_seconds: int) -> None:
    """Create or renew the fence Lease in a member cluster."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    coord = client.CoordinationV1Api(api_client)
    now = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "metadata": {"name": LEASE_NAME, "namespace": namespace},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": fence_seconds, "renewTime": now},
    }
    try:
        coord.patch_namespaced_lease(LEASE_NAME, namespace, body, _request_timeout=5)
    except ApiException as exc:
        if exc.status != 404:
            raise
        try:
            coord.create_namespaced_lease(namespace, body, _request_timeout=5)
        except ApiException as create_exc:
            if create_exc.status != 404:
                raise
            client.CoreV1Api(api_client).create_namespace(
                {"metadata": {"name": namespace}}, _request_timeout=5
            )
            coord.create_namespaced_lease(namespace, body, _request_timeout=5)


class Agent:
    """Runs in a member cluster; stops gpufleet's pods there when the operator goes silent."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        origin: str,
        fence_seconds: float,
        interval: float = 1.0,
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.origin = origin
        self.fence_seconds = fence_seconds
        self.interval = interval
        self._last_version: str | None = None
        self._last_change = time.monotonic()
        self._blind = False
        self._recorded: tuple[str, bool] | None = None
        # A read of the Lease slower than this counts as a moment the agent could not see.
        self.max_read_seconds = 2.0
        self.clock = time.monotonic  # the agent's own clock (a test's, in tests)
        self.fenced = False

    def observe(
        self, version: str, renewed_at: float | None, wall_now: float, mono_now: float
    ) -> bool:
        """Account for one look at the lease; True when the operator has been silent too long.

        A renewal is a change of the Lease's resourceVersion, timed with this agent's own
        monotonic clock. Only the first look after the agent (re)starts falls back to the
        Lease's renewTime, written by the operator's clock: that way a restart during a cut
        delays the fence by at most the clock skew, not by the whole restart. The first look
        after the agent could not read its API server starts the count afresh (see `blind`).
        """
        if self._blind:
            # Nobody could renew while the API server did not answer us; the operator gets a
            # whole fence time from now, as after a renewal.
            self._blind = False
            self._last_version = version
            self._last_change = mono_now
            return False
        if self._last_version is None and renewed_at is not None:
            self._last_version = version
            self._last_change = mono_now - max(0.0, wall_now - renewed_at)
        elif version != self._last_version:
            self._last_version = version
            self._last_change = mono_now
            if self.fenced:
                log.info("the operator renewed the lease again; fence lifted")
            self.fenced = False
        return mono_now - self._last_change >= self.fence_seconds

    def blind(self) -> None:
        """The agent could not read its API server: silence seen so far is void.

        Counting on would mistake the agent's own lost contact (a paused or restarting API
        server, a broken node network) for the operator's silence, and fence healthy work the
        moment the API server answers again, before the operator's next renewal.
        """
        if not self._blind:
            log.warning("cannot read the fence Lease; the silence count restarts once it can")
        self._blind = True

    def step(self) -> int:
        """One look at the lease; returns how many pods were deleted."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        started = self.clock()
        try:
            lease = client.CoordinationV1Api(self.api_client).read_namespaced_lease(
                LEASE_NAME, self.namespace, _request_timeout=5
            )
        except ApiException as exc:
            if exc.status != 404:
                self.blind()
                raise
            return 0  # never registered: nothing of ours to protect
        except Exception:
            self.blind()
            raise
        if self.clock() - started > self.max_read_seconds:
            # A read the API server held (paused, overloaded; the client retries timeouts
            # inside the call) is blindness too: the operator could not renew meanwhile.
            self.blind()
        renew = lease.spec.renew_time if lease.spec else None
        version = lease.metadata.resource_version
        if not self.observe(
            version,
            renew.timestamp() if renew is not None else None,
            time.time(),
            self.clock(),
        ):
            return 0
        if not self.fenced:
            log.warning(
                "no lease renewal for %.0fs (fence %.0fs): stopping gpufleet's pods here",
                self.clock() - self._last_change,
                self.fence_seconds,
            )
        self.fenced = True
        core = client.CoreV1Api(self.api_client)
        deleted = 0
        for pod in self._live_pods(core):
            core.delete_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
            )
            deleted += 1
        # The record says what the operator may rely on: complete only when a fresh list
        # finds nothing of ours running (a pod stuck terminating is not stopped).
        left = [p for p in self._all_pods(core) if p.status.phase not in ("Succeeded", "Failed")]
        self._record(version, complete=not left, pods=len(left))
        return deleted

    def _all_pods(self, core: Any) -> list[Any]:
        selector = f"{LABEL_MANAGED}={MANAGED_BY},{LABEL_ORIGIN}={self.origin}"
        return list(
            core.list_pod_for_all_namespaces(label_selector=selector, _request_timeout=10).items
        )

    def _live_pods(self, core: Any) -> list[Any]:
        return [
            p
            for p in self._all_pods(core)
            if p.metadata.deletion_timestamp is None
            and p.status.phase not in ("Succeeded", "Failed")
        ]

    def _record(self, lease_version: str, *, complete: bool, pods: int) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        if self._recorded == (lease_version, complete):
            return
        data = {
            "leaseVersion": lease_version,
            "fencedAt": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "complete": "true" if complete else "false",
            "podsLeft": str(pods),
        }
        body = {"metadata": {"name": RECORD_NAME, "namespace": self.namespace}, "data": data}
        core = client.CoreV1Api(self.api_client)
        try:
            core.replace_namespaced_config_map(
                RECORD_NAME, self.namespace, body, _request_timeout=5
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespaced_config_map(self.namespace, body, _request_timeout=5)
        self._recorded = (lease_version, complete)
        log.warning("fence recorded: after lease version %s, complete=%s", lease_version, complete)

    def run(self) -> None:
        while True:
            try:
                n = self.step()
                if n:
                    log.warning("deleted %d pod(s) while fenced", n)
            except Exception as exc:
                log.warning("agent step failed: %s", exc)
            time.sleep(self.interval)
