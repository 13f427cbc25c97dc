"""Kopf handlers: thin. They feed gpufleet's objects into the cache and start the loop."""

from __future__ import annotations

from typing import Any

import kopf

from gpufleet.api.v1alpha1 import GROUP, VERSION
from gpufleet.control.operator import Operator, OperatorConfig

KINDS = {"sites": "Site", "gpupools": "GpuPool", "queues": "Queue", "workloads": "Workload"}


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf keeps no state of its own on our objects beyond what we name here.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="gpufleet.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="gpufleet.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "gpufleet.io/finalizer"
    # gpufleet writes its own Events with explicit reasons; Kopf's log echoes would be noise.
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.reconnect_backoff = 1.0
    config: OperatorConfig = memo.get("config", OperatorConfig())
    operator = Operator(config)
    await operator.start()
    memo["operator"] = operator


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    operator: Operator | None = memo.get("operator")
    if operator is not None:
        await operator.shutdown()


def _feed(kind: str) -> Any:
    def handler(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        operator: Operator | None = memo.get("operator")
        if operator is None:
            return
        obj = event["object"]
        meta = obj.get("metadata", {})
        key = (
            f"{meta.get('namespace')}/{meta.get('name')}"
            if kind == "Workload"
            else str(meta.get("name"))
        )
        operator.cache.put_object(kind, key, None if event["type"] == "DELETED" else dict(obj))

    handler.__name__ = f"feed_{kind.lower()}"
    return handler


for _plural, _kind in KINDS.items():
    kopf.on.event(GROUP, VERSION, _plural)(_feed(_kind))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # In a pod: the service account. Outside: the kubeconfig named by --kubeconfig/KUBECONFIG,
    # read when logging in (the client library reads KUBECONFIG once, at import).
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
