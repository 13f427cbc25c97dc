"""Synthetic fleets with a past: months of arrivals, replayed, aggregated per hour.

`synthesize` draws arrivals from a trace's job mix (sizes and runtimes together) as a
Poisson process whose rate grows by `growth` every 30 days and follows a weekly cycle of
amplitude `weekly`; each job gets an accelerator class (by installed capacity, so every
class is loaded alike) and a queue (by the queues' shares). The replay itself is the
ordinary engine with a coarse decision cycle; `hourly` turns its placements into the
series an operator's Prometheus would hold: time-weighted hourly means of allocated and
pending accelerators per (site, class, queue), the mean admission wait, installed
capacity, and — known only to a simulation — the unconstrained demand (what would run if
capacity were unlimited), the truth a forecast of allocated + pending is judged against.

Pending accelerators have no site until placed. They are attributed to the sites that
have their class in proportion to installed capacity, the same rule the Prometheus
reader applies to the operator's per-queue series (which carry no site label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from gpufleet.sim.engine import RunResult
from gpufleet.sim.fleet import SimFleet, SimNode
from gpufleet.sim.jobs import Job, Trace
from gpufleet.sim.tenants import QueueSpec

FloatArray = npt.NDArray[np.float64]
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
MONTH = 30 * DAY  # the unit of --growth


@dataclass(frozen=True, slots=True)
class Shape:
    """What the job mix contributes: a size and a runtime, drawn together."""

    gpus: int
    runtime: float


def mix_from_trace(trace: Trace, max_runtime: float | None = None) -> list[Shape]:
    """Single-replica shapes of a trace (openb pods are one replica each)."""
    shapes = [
        Shape(j.gpus, min(j.runtime, max_runtime) if max_runtime else j.runtime) for j in trace.jobs
    ]
    if not shapes:
        raise ValueError(f"{trace.source}: no jobs to draw a job mix from")
    return shapes


def rate_profile(t: FloatArray, growth: float, weekly: float) -> FloatArray:
    """Relative arrival rate at times `t` (seconds): 1 at t = 0 before the weekly cycle.

    The cycle peaks mid-week (day 2.5 after the start, a Monday) and bottoms out at the
    weekend, like a fleet whose users work weekdays.
    """
    trend = (1.0 + growth) ** (t / MONTH)
    cycle = 1.0 + weekly * np.cos(2 * np.pi * (t / WEEK - 2.5 / 7))
    return np.asarray(trend * cycle, dtype=np.float64)


def synthesize(
    mix: Sequence[Shape],
    fleet: SimFleet,
    queues: Sequence[QueueSpec],
    days: int,
    growth: float,
    weekly: float,
    load: float,
    seed: int,
    warmup_days: int = 0,
) -> Trace:
    """Arrivals over `warmup_days + days` at offered load `load` of capacity on day 0.

    The history proper starts after the warm-up (see `hourly`'s `start`): an empty fleet
    fills over about the longest runtime, and that ramp is no demand anyone had.
    """
    if days < 1:
        raise ValueError(f"days: must be >= 1 (got {days})")
    if growth <= -1:
        raise ValueError(f"growth: must be > -1 (got {growth})")
    if not 0 <= weekly < 1:
        raise ValueError(f"weekly: amplitude must be in [0, 1) (got {weekly})")
    if load <= 0:
        raise ValueError(f"load: must be > 0 (got {load})")
    rng = np.random.default_rng(seed)
    gpus = np.array([s.gpus for s in mix], dtype=np.int64)
    runtimes = np.array([s.runtime for s in mix], dtype=np.float64)
    # Little's law: busy accelerators = rate x mean accelerator-seconds per job.
    base_rate = load * fleet.total_gpus / float((gpus * runtimes).mean())
    hours = np.arange((warmup_days + days) * 24, dtype=np.float64) * HOUR
    # The rate at mid-hour stands for the hour; the cycle is far slower than an hour.
    since_start = hours + HOUR / 2 - warmup_days * DAY
    counts = rng.poisson(base_rate * HOUR * rate_profile(since_start, growth, weekly))
    arrivals = np.repeat(hours, counts) + rng.uniform(0, HOUR, int(counts.sum()))
    arrivals.sort()
    picks = rng.integers(0, len(mix), arrivals.size)
    by_class = fleet.capacity_by_class()
    classes = sorted(by_class)
    class_p = np.array([by_class[c] for c in classes], dtype=np.float64)
    class_pick = rng.choice(len(classes), arrivals.size, p=class_p / class_p.sum())
    queue_p = np.array([q.share for q in queues], dtype=np.float64)
    queue_pick = rng.choice(len(queues), arrivals.size, p=queue_p / queue_p.sum())
    largest = _largest_node(fleet)
    jobs = tuple(
        Job(
            id=i,
            name=f"job-{i}",
            arrival=float(arrivals[i]),
            runtime=float(runtimes[picks[i]]),
            # A pod larger than any node of its class would never run; cap it at the node.
            per_replica=min(int(gpus[picks[i]]), largest[classes[class_pick[i]]]),
            classes=frozenset({classes[class_pick[i]]}),
            queue=queues[queue_pick[i]].name,
        )
        for i in range(arrivals.size)
    )
    source = (
        f"synthetic: {days} days, growth {growth}/30d, weekly {weekly}, load {load}, seed {seed}"
    )
    return Trace(jobs, source)


def _largest_node(fleet: SimFleet) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in fleet.nodes:
        cls = fleet.pools[node.pool].accelerator_class
        out[cls] = max(out.get(cls, 0), node.gpus)
    return out


# --- what-if changes to the fleet ---


@dataclass(frozen=True, slots=True)
class Expansion:
    """`nodes` more nodes of `accelerator_class` at `site`, online from `day`."""

    site: str
    accelerator_class: str
    nodes: int
    day: float

    @classmethod
    def parse(cls, text: str) -> Expansion:
        """SITE:CLASS:NODES@DAY, e.g. factory-osl:nvidia-h200:8@60."""
        try:
            where, day = text.rsplit("@", 1)
            site, accel, nodes = where.split(":")
            parsed = cls(site, accel, int(nodes), float(day))
        except ValueError as exc:
            raise ValueError(f"--expand: expected SITE:CLASS:NODES@DAY (got {text!r})") from exc
        if parsed.nodes < 1 or parsed.day < 0:
            raise ValueError(f"--expand {text!r}: NODES must be >= 1 and DAY >= 0")
        return parsed


def expand(
    fleet: SimFleet, changes: Sequence[Expansion], offset: float = 0.0
) -> tuple[SimFleet, dict[int, float]]:
    """The fleet with the added nodes, and when (`offset` + day) each comes online.

    New nodes join the site's pool of that class and are shaped like its first node; a
    site without such a pool cannot be expanded here (its node shape would be a guess).
    """
    nodes = list(fleet.nodes)
    online: dict[int, float] = {}
    site_index = {s.name: i for i, s in enumerate(fleet.sites)}
    for change in changes:
        if change.site not in site_index:
            raise ValueError(f"--expand: no site {change.site!r} in fleet {fleet.name!r}")
        pool = next(
            (
                i
                for i, p in enumerate(fleet.pools)
                if p.site == site_index[change.site]
                and p.accelerator_class == change.accelerator_class
            ),
            None,
        )
        if pool is None:
            raise ValueError(
                f"--expand: site {change.site!r} has no {change.accelerator_class!r} pool"
            )
        model = next(n for n in fleet.nodes if n.pool == pool)
        for k in range(change.nodes):
            online[len(nodes)] = offset + change.day * DAY
            nodes.append(replace(model, name=f"{model.name}-x{len(nodes)}-{k}"))
    return SimFleet(fleet.name, fleet.sites, fleet.pools, tuple(nodes)), online


def power_cap(fleet: SimFleet, site: str, watts: float, node_watts: dict[str, float]) -> SimFleet:
    """Keep the site's nodes, in fleet order, while their summed power fits `watts`.

    `node_watts` gives the power of one node per accelerator class (from the SKU table);
    a class missing from it cannot be capped.
    """
    index = next((i for i, s in enumerate(fleet.sites) if s.name == site), None)
    if index is None:
        raise ValueError(f"--power-cap: no site {site!r} in fleet {fleet.name!r}")
    kept: list[SimNode] = []
    used = 0.0
    for node in fleet.nodes:
        pool = fleet.pools[node.pool]
        if pool.site != index:
            kept.append(node)
            continue
        if pool.accelerator_class not in node_watts:
            raise ValueError(f"--power-cap: no node power known for {pool.accelerator_class!r}")
        if used + node_watts[pool.accelerator_class] <= watts:
            used += node_watts[pool.accelerator_class]
            kept.append(node)
    return SimFleet(fleet.name, fleet.sites, fleet.pools, tuple(kept))


# --- hourly series ---


@dataclass(frozen=True)
class HourlySeries:
    """Arrays indexed [key, hour]; keys are (site, accelerator class, queue)."""

    keys: tuple[tuple[str, str, str], ...]
    allocated: FloatArray
    pending: FloatArray
    admission_wait: FloatArray  # mean seconds of the hour's admissions; NaN when none
    capacity: FloatArray  # installed (online) accelerators of the key's site and class
    demand_true: FloatArray
    # Accelerators of the workloads admitted (placed) in the hour, at the site placed: what
    # the operator's counter gpufleet_queue_admitted_accelerators_total adds up.
    admitted: FloatArray


def _integral(
    starts: FloatArray, ends: FloatArray, weights: FloatArray, edges: FloatArray
) -> FloatArray:
    """Mean over each [edges[i], edges[i+1]) of sum(weights x [start <= t < end])."""
    out = np.zeros(edges.size - 1)
    if starts.size == 0:
        return out
    # Accumulated weight-seconds up to each edge: those begun minus those ended.
    acc = np.zeros(edges.size)
    for points, sign in ((starts, 1.0), (ends, -1.0)):
        order = np.argsort(points)
        p, w = points[order], weights[order]
        cum_w = np.concatenate(([0.0], np.cumsum(w)))
        cum_wp = np.concatenate(([0.0], np.cumsum(np.where(np.isfinite(p), w * p, 0.0))))
        k = np.searchsorted(p, edges, side="right")
        acc += sign * (edges * cum_w[k] - cum_wp[k])
    return np.diff(acc) / np.diff(edges)


def hourly(
    result: RunResult, trace: Trace, days: int, online: dict[int, float], start: float = 0.0
) -> HourlySeries:
    """The replay as hourly series over [start, start + days)."""
    fleet = result.fleet
    edges = start + np.arange(days * 24 + 1, dtype=np.float64) * HOUR
    site_class = sorted(
        {(fleet.sites[p.site].name, p.accelerator_class) for p in fleet.pools}
        & {
            (fleet.sites[fleet.pools[n.pool].site].name, fleet.pools[n.pool].accelerator_class)
            for n in fleet.nodes
        }
    )
    queues = [q.name for q in result.queues]
    keys = tuple((s, c, q) for s, c in site_class for q in queues)
    index = {k: i for i, k in enumerate(keys)}
    n_hours = edges.size - 1

    # Installed capacity per site and class, counting a node from the moment it is online.
    cap: dict[tuple[str, str], FloatArray] = {sc: np.zeros(n_hours) for sc in site_class}
    for i, node in enumerate(fleet.nodes):
        pool = fleet.pools[node.pool]
        sc = (fleet.sites[pool.site].name, pool.accelerator_class)
        since = np.array([online.get(i, 0.0)])
        cap[sc] += _integral(since, np.array([math.inf]), np.array([float(node.gpus)]), edges)
    by_class: dict[str, FloatArray] = {}
    for (_, c), series in cap.items():
        by_class[c] = by_class.get(c, np.zeros(n_hours)) + series
    # The share of a class's capacity at each site: where pending and true demand go.
    share = {sc: np.divide(cap[sc], by_class[sc[1]], where=by_class[sc[1]] > 0,
                           out=np.zeros(n_hours)) for sc in site_class}  # fmt: skip

    alloc_parts: dict[int, list[tuple[float, float, float]]] = {}
    wait_sum = np.zeros((len(keys), n_hours))
    admitted = np.zeros((len(keys), n_hours))
    wait_count = np.zeros((len(keys), n_hours))
    pending_parts: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    runs_of: dict[int, list[tuple[float, float, bool, int]]] = {}
    for seg in result.segments:
        job = seg.run.job
        pool = fleet.pools[fleet.node_pool[seg.run.alloc[0][0]]]
        key = index[(fleet.sites[pool.site].name, pool.accelerator_class, job.queue)]
        alloc_parts.setdefault(key, []).append((seg.run.start, seg.end, float(job.gpus)))
        runs_of.setdefault(job.id, []).append((seg.run.start, seg.end, seg.completed, key))
    never_run = {j.id for j in result.stalled}
    for job in trace.jobs:
        if job.id not in runs_of and job.id not in never_run:
            continue  # unschedulable: it could never run on this fleet
        cls = next(iter(job.classes))
        waiting = job.arrival
        for began, end, completed, k in sorted(runs_of.get(job.id, [])):
            pending_parts.setdefault((cls, job.queue), []).append((waiting, began, job.gpus))
            hour = int((began - edges[0]) // HOUR)
            if 0 <= hour < n_hours:
                wait_sum[k, hour] += began - waiting
                wait_count[k, hour] += 1
                admitted[k, hour] += job.gpus
            waiting = math.inf if completed else end
        if math.isfinite(waiting):
            pending_parts.setdefault((cls, job.queue), []).append((waiting, math.inf, job.gpus))

    allocated = np.zeros((len(keys), n_hours))
    for key, spans in alloc_parts.items():
        a = np.array(spans).reshape(-1, 3)
        allocated[key] = _integral(a[:, 0], a[:, 1], a[:, 2], edges)
    pending = np.zeros((len(keys), n_hours))
    truth = np.zeros((len(keys), n_hours))
    capacity = np.zeros((len(keys), n_hours))
    demand_parts: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for job in trace.jobs:
        cls = next(iter(job.classes))
        demand_parts.setdefault((cls, job.queue), []).append(
            (job.arrival, job.arrival + job.runtime, float(job.gpus))
        )
    for (s, c, q), k in index.items():
        capacity[k] = cap[(s, c)]
        for parts, target in ((pending_parts, pending), (demand_parts, truth)):
            rows = parts.get((c, q))
            if rows:
                a = np.array(rows, dtype=np.float64).reshape(-1, 3)
                target[k] = _integral(a[:, 0], a[:, 1], a[:, 2], edges) * share[(s, c)]
    with np.errstate(invalid="ignore", divide="ignore"):
        wait = np.where(wait_count > 0, wait_sum / wait_count, np.nan)
    return HourlySeries(keys, allocated, pending, wait, capacity, truth, admitted)
