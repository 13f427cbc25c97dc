"""Writes to the hub's API server: statuses with compare-and-swap, and Events.

Status goes through the /status subresource as a JSON merge patch that
carries the resourceVersion it was computed from; the API server refuses it
with 409 if the object changed since, so a decision taken on a stale view is
never recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gpufleet.api.v1alpha1 import GROUP, KIND_INFO, VERSION
from gpufleet.metrics import WriteKind

log = logging.getLogger(__name__)


class ConflictError(Exception):
    """The object changed since the decision was taken."""


class Writer:
    def __init__(
        self,
        api_client: Any,
        component: str = "gpufleet",
        on_write: Callable[[WriteKind], None] | None = None,
    ) -> None:
        from kubernetes import client

        # Told of every write request sent (gpufleet_api_writes_total), answered or not.
        self.on_write = on_write
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.component = component

    def patch_status(
        self, kind: str, body: dict[str, Any], status: dict[str, Any], *, cas: bool = True
    ) -> dict[str, Any]:
        from kubernetes.client.rest import ApiException

        meta = body["metadata"]
        patch: dict[str, Any] = {"status": status}
        if cas:
            patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}
        info = KIND_INFO[kind]
        self._count(WriteKind.WORKLOAD_STATUS if kind == "Workload" else WriteKind.FLEET_STATUS)
        try:
            if info.namespaced:
                result = self.custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    meta["namespace"],
                    info.plural,
                    meta["name"],
                    patch,
                    _request_timeout=30,
                )
            else:
                result = self.custom.patch_cluster_custom_object_status(
                    GROUP, VERSION, info.plural, meta["name"], patch, _request_timeout=30
                )
        except ApiException as exc:
            if exc.status in (409, 404):
                raise ConflictError(
                    f"{kind} {meta.get('namespace', '')}/{meta['name']}: {exc.reason}"
                ) from exc
            raise
        return dict(result)

    def event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> str | None:
        """Best effort: an Event that cannot be written is logged, never fatal. Returns the
        created Event's name, so that repeats can be folded into it (control/events.py)."""
        from kubernetes.client.rest import ApiException

        meta = body["metadata"]
        namespace = meta.get("namespace") or "default"
        now = datetime.now(tz=UTC)
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": body.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": body.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
            "source": {"component": self.component},
            "reportingComponent": self.component,
        }
        self._count(WriteKind.EVENT_CREATE)
        try:
            response = self.core.create_namespaced_event(
                namespace, event, _request_timeout=10, _preload_content=False
            )
            data = response.data
            response.release_conn()
        except ApiException as exc:
            log.info("could not record event %s on %s: %s", reason, meta["name"], exc.reason)
            return None
        try:
            return str(json.loads(data)["metadata"]["name"])
        except (ValueError, KeyError, TypeError):
            return None

    def patch_event(self, namespace: str, name: str, count: int) -> bool:
        """A repeat of an Event: its count and lastTimestamp. False when it is gone."""
        from kubernetes.client.rest import ApiException

        now = datetime.now(tz=UTC).isoformat()
        self._count(WriteKind.EVENT_PATCH)
        try:
            response = self.core.patch_namespaced_event(
                name,
                namespace,
                {"count": count, "lastTimestamp": now},
                _request_timeout=10,
                _preload_content=False,
            )
            response.data  # noqa: B018 - read to the end so the connection is reused
            response.release_conn()
        except ApiException as exc:
            if exc.status != 404:
                log.info("could not update event %s/%s: %s", namespace, name, exc.reason)
            return False
        return True

    def _count(self, kind: WriteKind) -> None:
        if self.on_write is not None:
            self.on_write(kind)
