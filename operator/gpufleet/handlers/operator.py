"""Kopf handlers: thin. They feed gpufleet's objects into the cache and start the loop."""

from __future__ import annotations

from typing import Any

import kopf

from gpufleet.api.v1alpha1 import GROUP, KIND_INFO, VERSION, Kind
from gpufleet.control.operator import Operator, OperatorConfig


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Only `on.event` handlers: Kopf stores no progress, diff base or finalizer on our objects
    # and posts no Events for them (their logger is local), so only its watches need settings:
    # end each watch within minutes, as the site connections do, and relist calmly on errors.
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


def _feed(kind: Kind) -> Any:
    def handler(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        operator: Operator | None = memo.get("operator")
        if operator is None:
            return
        obj = event["object"]
        key = kind.key(obj.get("metadata", {}))
        operator.cache.put_object(kind.name, key, None if event["type"] == "DELETED" else dict(obj))

    handler.__name__ = f"feed_{kind.name.lower()}"
    return handler


for _kind in KIND_INFO.values():
    kopf.on.event(GROUP, VERSION, _kind.plural)(_feed(_kind))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # In a pod: the service account. Outside: the kubeconfig named by --kubeconfig/KUBECONFIG,
    # read when logging in (the client library reads KUBECONFIG once, at import).
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
