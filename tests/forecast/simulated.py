"""Small synthetic fleets with a past, replayed by the simulator (item 2), for tests."""

from __future__ import annotations

import numpy as np

from gpufleet.forecast.history import History, Key
from gpufleet.sim import history as simhist
from gpufleet.sim.engine import replay
from gpufleet.sim.fleet import SimFleet, SimNode, SimPool, SimSite
from gpufleet.sim.policies.registry import make
from gpufleet.sim.tenants import default_queues

HOUR = 3600.0


def fleet(fra_nodes: int = 16, osl_nodes: int = 32) -> SimFleet:
    sites = (SimSite("fra", "DE"), SimSite("osl", "NO"))
    pools = (SimPool("fra-h100", 0, "nvidia-h100"), SimPool("osl-h200", 1, "nvidia-h200"))
    nodes = tuple(SimNode(f"f{i}", 0, 8) for i in range(fra_nodes)) + tuple(
        SimNode(f"o{i}", 1, 8) for i in range(osl_nodes)
    )
    return SimFleet("test", sites, pools, nodes)


def mix(seed: int = 0) -> list[simhist.Shape]:
    """Mostly one-accelerator jobs of 4-24 hours, a few of 2, 4 and 8 accelerators.

    Hours rather than openb's minutes: the same accelerator-hours in fewer jobs keep a
    replay of months within a test's seconds.
    """
    rng = np.random.default_rng(seed)
    gpus = rng.choice([1, 2, 4, 8], 400, p=[0.85, 0.07, 0.05, 0.03])
    hours = rng.uniform(4, 24, 400)
    return [simhist.Shape(int(g), float(h * HOUR)) for g, h in zip(gpus, hours, strict=True)]


def simulate(
    days: int,
    growth: float,
    weekly: float,
    load: float,
    seed: int,
    sim_fleet: SimFleet | None = None,
) -> History:
    f = sim_fleet or fleet()
    queues = default_queues(2, [0.6, 0.4])
    warmup = 1
    trace = simhist.synthesize(mix(seed), f, queues, days, growth, weekly, load, seed, warmup)
    policy = make(["fifo-first-fit"], trace.jobs)[0]
    result = replay(trace, f, queues, policy, None, 600.0)
    s = simhist.hourly(result, trace, days, {}, warmup * simhist.DAY)
    return History(
        np.datetime64("2025-01-06T00:00:00"),
        tuple(Key(*k) for k in s.keys),
        s.allocated,
        s.pending,
        s.capacity,
        s.admission_wait,
        s.demand_true,
        s.admitted,
    )
