"""Fencing a cut-off site, so that a workload never runs at two sites at once.

The operator renews a Lease in every member cluster while it can reach it. An
agent inside the member cluster (`gpufleet agent`, the same image) watches that
Lease with its own clock: when it has not seen a renewal for the fence time, it
deletes the operator's pods there. The operator re-places a lost site's
workloads only after fence + grace has passed since its last renewal, and with a
higher epoch; on reconnection, pods of older epochs are removed. Neither side
compares the other's clock: each measures the silence it saw itself.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from gpufleet.observed.records import LABEL_MANAGED, LABEL_ORIGIN, MANAGED_BY

log = logging.getLogger(__name__)

LEASE_NAME = "gpufleet-fence"


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
        self.fenced = False

    def observe(
        self, version: str, renewed_at: float | None, wall_now: float, mono_now: float
    ) -> bool:
        """Account for one look at the lease; True when the operator has been silent too long.

        A renewal is a change of the Lease's resourceVersion, timed with this agent's own
        monotonic clock. Only the first look after the agent (re)starts falls back to the
        Lease's renewTime, written by the operator's clock: that way a restart during a cut
        delays the fence by at most the clock skew, not by the whole restart.
        """
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

    def step(self) -> int:
        """One look at the lease; returns how many pods were deleted."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            lease = client.CoordinationV1Api(self.api_client).read_namespaced_lease(
                LEASE_NAME, self.namespace, _request_timeout=5
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return 0  # never registered: nothing of ours to protect
        renew = lease.spec.renew_time if lease.spec else None
        if not self.observe(
            lease.metadata.resource_version,
            renew.timestamp() if renew is not None else None,
            time.time(),
            time.monotonic(),
        ):
            return 0
        if not self.fenced:
            log.warning(
                "no lease renewal for %.0fs (fence %.0fs): stopping gpufleet's pods here",
                time.monotonic() - self._last_change,
                self.fence_seconds,
            )
        self.fenced = True
        core = client.CoreV1Api(self.api_client)
        selector = f"{LABEL_MANAGED}={MANAGED_BY},{LABEL_ORIGIN}={self.origin}"
        deleted = 0
        for pod in core.list_pod_for_all_namespaces(
            label_selector=selector, _request_timeout=10
        ).items:
            if pod.metadata.deletion_timestamp is None and pod.status.phase not in (
                "Succeeded",
                "Failed",
            ):
                core.delete_namespaced_pod(
                    pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
                )
                deleted += 1
        return deleted

    def run(self) -> None:
        while True:
            try:
                n = self.step()
                if n:
                    log.warning("deleted %d pod(s) while fenced", n)
            except Exception as exc:
                log.warning("agent step failed: %s", exc)
            time.sleep(self.interval)
