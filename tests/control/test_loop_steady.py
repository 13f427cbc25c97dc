"""A steady cycle does not redo what follows only from objects and pods that did not change."""

from __future__ import annotations

from typing import Any

import pytest

from gpufleet.control import loop as loop_module
from gpufleet.control.loop import SchedulingLoop
from gpufleet.observed.cache import HUB

from .builders import World
from .test_loop_metrics import FakeWriter


class HubOnly:
    """The hub's connection, for the gang Services; nothing else is reconciled."""

    connections: dict[str, Any] = {HUB: type("Conn", (), {"api_client": object()})()}

    def reconcile(self, sites: Any) -> None:
        pass


def test_gang_services_are_looked_for_again_only_when_workloads_or_pods_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = World(nodes=2).queue("q", ["ns"])
    w.placed("ns", "gang", "q", "fra", "h100", ["fra-0", "fra-1"])
    for i, node in enumerate(["fra-0", "fra-1"]):
        w.pod(HUB, "ns", "gang", i, node)
    looked, ensured = [], []
    real = loop_module.gang_services
    monkeypatch.setattr(loop_module, "gang_services", lambda v, i: looked.append(1) or real(v, i))
    monkeypatch.setattr(loop_module, "ensure_service", lambda api, m: ensured.append(m))
    loop = SchedulingLoop(
        w.cache,
        HubOnly(),
        FakeWriter(),
        origin="gpufleet",
        site_loss_after=90.0,  # type: ignore[arg-type]
    )
    try:
        loop.cycle()
        assert (len(looked), len(ensured)) == (1, 1)
        loop.cycle()  # nothing changed: not looked for again
        loop.cycle()
        assert (len(looked), len(ensured)) == (1, 1)
        w.foreign_pod(HUB, "other", "p", "fra-1", gpus=0)  # a pod changed: looked for again
        loop.cycle()
        assert (len(looked), len(ensured)) == (2, 1)
    finally:
        loop.pool.shutdown()
        loop.events.shutdown()
