"""What Site, GpuPool and Queue statuses and the metrics say after a cycle."""

from __future__ import annotations

import time

from gpufleet import core
from gpufleet.control.summary import summarise
from gpufleet.metrics import SiteConnection
from gpufleet.observed.translate import translate

from .builders import World

NOW = time.time()


def _summary(world: World, site_loss_after: float = 90.0):  # type: ignore[no-untyped-def]
    view = world.cache.view()
    inputs = translate(view, {})
    snap = core.Snapshot.build(
        inputs.sites, inputs.pools, inputs.nodes, inputs.queues, inputs.workloads, NOW
    )
    return summarise(view, inputs, core.schedule(snap), NOW, site_loss_after)


def test_pool_allocation_is_the_sum_of_its_placements() -> None:
    w = World(nodes=4).queue("q", ["ns"])
    w.placed("ns", "a", "q", "fra", "h100", ["fra-0", "fra-1"])
    w.placed("ns", "b", "q", "fra", "h100", ["fra-2"], gpus=4)
    s = _summary(w)
    pool = next(p for p in s.pool_states if p.name == "h100")
    assert (pool.capacity, pool.allocated, pool.free) == (32, 20, 12)
    assert s.pool_status["h100"]["allocated"] == 20
    assert s.queue_status["q"]["totals"]["allocated"] == 20


def test_disconnected_site_becomes_fenced_only_on_evidence() -> None:
    w = World()
    w.connect("ams", connected=False, renewed=NOW - 30)
    states = {x.name: x.connection for x in _summary(w).site_states}
    assert states == {"fra": SiteConnection.CONNECTED, "ams": SiteConnection.DISCONNECTED}
    w.connect("ams", connected=False, renewed=NOW - 300)
    # Silence alone, however long, proves nothing about the pods there.
    assert {x.name: x.connection for x in _summary(w).site_states}["ams"] == (
        SiteConnection.DISCONNECTED
    )
    w.declare_lost("ams", at=NOW - 10)
    s = _summary(w)
    assert {x.name: x.connection for x in s.site_states}["ams"] == SiteConnection.FENCED
    assert s.site_status["ams"]["connection"]["state"] == "Disconnected"
    ready = next(c for c in s.site_status["ams"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"


def test_power_in_use_follows_allocated_accelerators() -> None:
    w = World(nodes=2).queue("q", ["ns"])
    body = w.cache.pools["h100"]
    body["spec"]["wattsPerAccelerator"] = 700
    body["metadata"]["resourceVersion"] = w.rv()
    w.placed("ns", "a", "q", "fra", "h100", ["fra-0"])
    s = _summary(w)
    assert {x.name: x.power_in_use_watts for x in s.site_states}["fra"] == 8 * 700
    assert s.site_status["fra"]["powerInUseKw"] == 5.6


def test_a_parent_queue_reports_what_its_children_hold_and_wait_for() -> None:
    w = World(nodes=4).queue("dept", [], deserved=32)
    w.queue("team-a", ["a"], parent="dept").queue("team-b", ["b"], parent="dept")
    w.placed("a", "x", "team-a", "fra", "h100", ["fra-0"])
    w.placed("b", "y", "team-b", "fra", "h100", ["fra-1", "fra-2"])
    w.workload("b", "waiting", "team-b", gpus=8, replicas=8, acceleratorClasses=["nvidia-h100"])
    s = _summary(w)
    dept = s.queue_status["dept"]
    assert dept["totals"]["allocated"] == 24
    assert dept["totals"]["pending"] == 64
    assert dept["admittedWorkloads"] == 2
    assert dept["pendingWorkloads"] == 1
    assert s.queue_status["team-b"]["totals"]["allocated"] == 16
