"""API-tier fixtures: the generated CRDs installed on the hub's real API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.builders import CRDS, PLURALS, Server
from gpufleet.api.v1alpha1 import GROUP


@pytest.fixture(scope="session")
def crds(hub):  # type: ignore[no-untyped-def]
    """The hub with the CRDs from crds/ applied and Established.

    They are left installed: deleting a CRD deletes every object of its kind,
    including those of other tests sharing the hub.
    """
    hub.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    names = [f"crd/{plural}.{GROUP}" for plural in PLURALS.values()]
    hub.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return hub


@pytest.fixture(scope="session")
def server(crds) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    client = crds.api_client()
    try:
        yield Server(client)
    finally:
        client.close()
