"""Synthetic histories: arrivals grow and cycle as asked; the hourly series are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpufleet.sim import history as simhist
from gpufleet.sim.engine import replay
from gpufleet.sim.fleet import SimFleet, SimNode, SimPool, SimSite
from gpufleet.sim.policies.registry import make
from gpufleet.sim.tenants import default_queues
from sim.builders import job, one_site, trace

HOUR, DAY = 3600.0, 86400.0


def two_sites() -> SimFleet:
    sites = (SimSite("fra", "DE"), SimSite("osl", "NO"))
    pools = (SimPool("fra-h100", 0, "nvidia-h100"), SimPool("osl-h100", 1, "nvidia-h100"),
             SimPool("osl-h200", 1, "nvidia-h200"))  # fmt: skip
    nodes = (SimNode("f0", 0, 8), SimNode("o0", 1, 8), SimNode("o1", 1, 8), SimNode("h0", 2, 8))
    return SimFleet("t", sites, pools, nodes)


def test_arrival_rate_grows_per_30_days_and_cycles_weekly() -> None:
    mix = [simhist.Shape(1, 600.0)]
    fleet = one_site(8, 8, 8, 8)
    queues = default_queues(2, [0.75, 0.25])
    tr = simhist.synthesize(mix, fleet, queues, 120, 0.2, 0.5, 0.5, seed=4)
    t = np.array([j.arrival for j in tr.jobs])
    first, last = (t < 30 * DAY).sum(), ((t >= 90 * DAY) & (t < 120 * DAY)).sum()
    assert last / first == pytest.approx(1.2**3, rel=0.05)
    # Mid-week (day 2.5 of every week) against weekends: (1 + 0.5) / (1 - 0.5) at the extremes.
    phase = (t / DAY) % 7
    assert ((phase > 2) & (phase < 3)).sum() / ((phase > 5.5) & (phase < 6.5)).sum() > 2.2
    # Little's law: offered load 0.5 of 32 accelerators on day 0 = 16 busy.
    early = (t < 7 * DAY).sum() * 600.0 / (7 * DAY)
    assert early == pytest.approx(16, rel=0.1)
    shares = np.mean([j.queue == "q0" for j in tr.jobs])
    assert shares == pytest.approx(0.75, abs=0.02)


def test_hourly_series_are_time_weighted_means_per_site_class_queue() -> None:
    fleet = one_site(4)
    queues = default_queues(1)
    tr = trace(
        job(0, 0.0, 1.5 * HOUR, 2, classes=["nvidia-h100"]),
        job(1, 0.0, 1.0 * HOUR, 4, classes=["nvidia-h100"]),  # waits for job 0 to end
    )
    result = replay(tr, fleet, queues, make(["fifo-first-fit"], tr.jobs)[0])
    series = simhist.hourly(result, tr, 1, {})
    assert series.keys == (("s", "nvidia-h100", "q0"),)
    # Hour 0: job 0 holds 2 all hour; job 1 pends all hour. Hour 1: job 0 for half an
    # hour, job 1 pends half an hour then holds 4 for the other half.
    np.testing.assert_allclose(series.allocated[0, :3], [2.0, 1.0 + 2.0, 4.0 / 2])
    np.testing.assert_allclose(series.pending[0, :3], [4.0, 2.0, 0.0])
    np.testing.assert_allclose(series.demand_true[0, :2], [6.0, 1.0])
    assert series.admission_wait[0, 1] == pytest.approx(1.5 * HOUR)
    assert np.isnan(series.admission_wait[0, 2])
    np.testing.assert_array_equal(series.capacity[0], 4.0)


def test_pending_demand_is_attributed_to_sites_by_capacity() -> None:
    fleet = two_sites()
    queues = default_queues(1)
    # Four 8-GPU jobs on three h100 nodes: the fourth waits, attributed 1:2 to fra and
    # osl, as their h100 capacities are.
    tr = trace(*(job(i, 0.0, 10 * DAY, 8, classes=["nvidia-h100"]) for i in range(4)))
    result = replay(tr, fleet, queues, make(["fifo-first-fit"], tr.jobs)[0])
    series = simhist.hourly(result, tr, 1, {})
    index = {k: i for i, k in enumerate(series.keys)}
    fra, osl = index[("fra", "nvidia-h100", "q0")], index[("osl", "nvidia-h100", "q0")]
    assert series.pending[fra, 0] == pytest.approx(8 / 3)
    assert series.pending[osl, 0] == pytest.approx(16 / 3)
    assert series.allocated[fra, 0] + series.allocated[osl, 0] == pytest.approx(24)
    assert series.capacity[osl, 0] == 16


def test_expansion_comes_online_on_its_day_and_takes_the_queue() -> None:
    fleet = two_sites()
    queues = default_queues(1)
    change = simhist.Expansion.parse("fra:nvidia-h100:2@1")
    assert change == simhist.Expansion("fra", "nvidia-h100", 2, 1.0)
    bigger, online = simhist.expand(fleet, [change])
    assert len(bigger.nodes) == 6
    assert set(online.values()) == {DAY}
    tr = trace(*(job(i, 0.0, 10 * DAY, 8, classes=["nvidia-h100"]) for i in range(5)))
    result = replay(tr, bigger, queues, make(["fifo-first-fit"], tr.jobs)[0], None, 0.0, online)
    series = simhist.hourly(result, tr, 2, online)
    fra = series.keys.index(("fra", "nvidia-h100", "q0"))
    assert series.capacity[fra, 23] == 8
    assert series.capacity[fra, 24] == 24
    total_alloc = series.allocated.sum(axis=0)
    assert total_alloc[23] == 24
    assert total_alloc[24] == 40
    assert series.pending.sum(axis=0)[24] == pytest.approx(0)
    with pytest.raises(ValueError, match="SITE:CLASS:NODES@DAY"):
        simhist.Expansion.parse("fra:h100@3")
    with pytest.raises(ValueError, match="no 'nvidia-h200' pool"):
        simhist.expand(fleet, [simhist.Expansion("fra", "nvidia-h200", 1, 0)])


def test_power_cap_keeps_the_nodes_the_budget_powers() -> None:
    fleet = two_sites()
    capped = simhist.power_cap(fleet, "osl", 25_000, {"nvidia-h100": 10_200, "nvidia-h200": 10_200})
    assert [n.name for n in capped.nodes] == ["f0", "o0", "o1"]
    assert math.isclose(capped.total_gpus, 24)
