"""A synthetic fleet for benchmarking the core, deterministic for a seed.

Shape: several sites in several jurisdictions, two accelerator classes per
site out of three, 8 accelerators per node, racks of 16 nodes split in two
NVLink domains; a two-level queue tree (departments -> teams) whose deserved
shares cover 80 % of each class; running workloads filling most of the fleet
roughly in proportion to deserved shares (a steady state, not an empty
fleet); pending gangs from 1 to 64 nodes, a share of them with residency
constraints or topology requirements.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gpufleet.core.model import Node, Placement, Pool, Queue, Residency, Site, Workload

ACCELERATORS_PER_NODE = 8
NODES_PER_RACK = 16
NODES_PER_NVLINK = 8
CLASSES = ("nvidia-h200", "nvidia-h100", "nvidia-a100")
SITES: tuple[tuple[str, str, tuple[str, ...], frozenset[str], float], ...] = (
    # name, jurisdiction, regions, certifications, cost factor
    ("factory-muc", "DE", ("EU",), frozenset({"c5", "iso27001"}), 1.0),
    ("onprem-fra", "DE", ("EU",), frozenset({"iso27001"}), 0.8),
    ("zone-par", "FR", ("EU",), frozenset({"iso27001"}), 1.2),
    ("factory-ams", "NL", ("EU",), frozenset({"c5"}), 1.1),
    ("region-iad", "US", ("NA",), frozenset({"fedramp-high"}), 0.9),
    ("zone-nrt", "JP", ("APAC",), frozenset(), 1.3),
)
# Gang sizes in nodes and how often they appear.
GANG_NODES = np.array([1, 2, 4, 8, 16, 32, 64])
GANG_WEIGHTS = np.array([0.45, 0.15, 0.14, 0.12, 0.08, 0.04, 0.02])
SMALL_ACCELERATORS = np.array([1, 2, 4, 8])
RESIDENCIES = (
    Residency(regions=frozenset({"EU"})),
    Residency(jurisdictions=frozenset({"DE"})),
    Residency(regions=frozenset({"EU"}), certifications=frozenset({"c5"})),
    Residency(jurisdictions=frozenset({"US"})),
)


def arrivals(
    fleet: SyntheticFleet, count: int, *, seed: int, now: float, prefix: str
) -> list[Workload]:
    """`count` more pending workloads for the fleet's teams, shaped like the first ones."""
    teams = sorted((q for q in fleet.queues if q.parent is not None), key=lambda q: q.name)
    team_class = [next(iter(q.deserved)) for q in teams]
    return _pending(np.random.default_rng(seed), count, team_class, 0.3, now, prefix)


@dataclass(frozen=True)
class SyntheticFleet:
    sites: list[Site]
    pools: list[Pool]
    nodes: list[Node]
    queues: list[Queue]
    workloads: list[Workload]
    now: float

    @property
    def pending(self) -> int:
        return sum(1 for w in self.workloads if w.placement is None)

    @property
    def running(self) -> int:
        return len(self.workloads) - self.pending


def build_fleet(
    gpus: int,
    queues: int,
    pending: int,
    *,
    seed: int = 0,
    fill: float = 0.85,
    residency_share: float = 0.3,
    now: float = 1_000_000.0,
) -> SyntheticFleet:
    """1. the sites; 2. two pools per site and their nodes, `gpus` in all; 3. what each
    team deserves; 4. the queue tree; 5. running workloads filling `fill` of each pool;
    6. `pending` workloads. One generator seeded with `seed` draws, in this order."""
    if gpus < ACCELERATORS_PER_NODE * len(SITES) * 2:
        raise ValueError(f"gpus: must be at least {ACCELERATORS_PER_NODE * len(SITES) * 2}")
    if queues < 2:
        raise ValueError("queues: must be at least 2 (one department, one team)")
    rng = np.random.default_rng(seed)
    sites = [  # 1
        Site(name, jur, regions, certs, power_budget_watts=None)
        for name, jur, regions, certs, _ in SITES
    ]
    pools, per_pool = _pools(gpus // ACCELERATORS_PER_NODE)  # 2
    nodes = _nodes(pools, per_pool)
    teams = _teams(rng, queues, _capacity(pools, per_pool))  # 3
    queue_list = _queues(rng, teams)  # 4
    workloads = _running(rng, pools, per_pool, teams.cls, teams.deserved, fill, now)  # 5
    workloads += _pending(rng, pending, teams.cls, residency_share, now)  # 6
    return SyntheticFleet(sites, pools, nodes, queue_list, workloads, now)


def _pools(n_nodes: int) -> tuple[list[Pool], np.ndarray]:
    """Two classes per site, rotating through the three classes; the nodes shared out
    evenly, the first pools taking one more each while nodes are left."""
    pools = []
    for s, (name, *_, cost) in enumerate(SITES):
        for k in range(2):
            cls = CLASSES[(s + k) % len(CLASSES)]
            pools.append(
                Pool(
                    f"{name}-{cls.split('-')[1]}",
                    name,
                    cls,
                    watts_per_accelerator=700.0,
                    cost_per_accelerator_hour=round(2.5 * cost, 2),
                    topology_keys=("rack", "nvlink-domain"),
                )
            )
    per_pool = np.full(len(pools), n_nodes // len(pools))
    per_pool[: n_nodes % len(pools)] += 1
    return pools, per_pool


def _nodes(pools: list[Pool], per_pool: np.ndarray) -> list[Node]:
    """Each pool's nodes, in racks of NODES_PER_RACK split in NVLink domains."""
    return [
        Node(
            f"{pool.name}-{i:06d}",
            pool.name,
            ACCELERATORS_PER_NODE,
            cpu_millis=192_000,
            memory_bytes=2048 * 2**30,
            pods=110,
            topology=(
                f"r{i // NODES_PER_RACK:05d}",
                f"nv{(i % NODES_PER_RACK) // NODES_PER_NVLINK}",
            ),
        )
        for pool, count in zip(pools, per_pool, strict=True)
        for i in range(int(count))
    ]


def _capacity(pools: list[Pool], per_pool: np.ndarray) -> dict[str, int]:
    """Accelerators per class."""
    capacity = dict.fromkeys(CLASSES, 0)
    for pool, count in zip(pools, per_pool, strict=True):
        capacity[pool.accelerator_class] += int(count) * ACCELERATORS_PER_NODE
    return capacity


@dataclass(frozen=True)
class _Teams:
    """Teams and their departments: team t mainly uses class cls[t], belongs to
    department dept[t] and deserves deserved[t] accelerators of its class."""

    depts: int
    dept: np.ndarray
    cls: list[str]
    deserved: list[int]


def _teams(rng: np.random.Generator, queues: int, capacity: dict[str, int]) -> _Teams:
    """About sqrt(queues) / 2 departments, the other queues teams; the teams of a class
    share 80 % of it by random weights, in multiples of 8."""
    n_depts = max(1, round(queues**0.5 / 2))
    n_teams = queues - n_depts
    team_class = [CLASSES[t % len(CLASSES)] for t in range(n_teams)]
    team_dept = rng.integers(0, n_depts, n_teams)
    weights = rng.uniform(0.5, 2.0, n_teams)
    class_weight = {
        c: weights[[i for i, tc in enumerate(team_class) if tc == c]].sum() for c in CLASSES
    }
    team_deserved = [
        int(0.8 * capacity[c] * weights[t] / class_weight[c]) // 8 * 8
        for t, c in enumerate(team_class)
    ]
    return _Teams(n_depts, team_dept, team_class, team_deserved)


def _queues(rng: np.random.Generator, teams: _Teams) -> list[Queue]:
    """Departments deserve what their teams do; a team may have a limit, a weight for
    idle capacity, a priority, a minimum runtime and allowed jurisdictions."""
    dept_deserved: list[dict[str, int]] = [dict.fromkeys(CLASSES, 0) for _ in range(teams.depts)]
    for t, cls in enumerate(teams.cls):
        dept_deserved[teams.dept[t]][cls] += teams.deserved[t]
    out = [Queue(f"dept-{d:03d}", None, deserved=dept_deserved[d]) for d in range(teams.depts)]
    for t, cls in enumerate(teams.cls):
        limit = {}
        if rng.random() < 0.2:
            limit = {cls: 2 * teams.deserved[t] + 64}
        out.append(
            Queue(
                f"team-{t:04d}",
                f"dept-{teams.dept[t]:03d}",
                deserved={cls: teams.deserved[t]},
                limit=limit,
                over_quota_weight={cls: float(rng.choice([1.0, 1.0, 2.0, 3.0]))},
                priority=int(rng.integers(0, 3)),
                min_runtime_seconds=float(rng.choice([0.0, 600.0])),
                allowed_jurisdictions=(
                    frozenset({"DE", "FR", "NL"}) if rng.random() < 0.1 else None
                ),
            )
        )
    return out


def _gang(rng: np.random.Generator) -> tuple[int, int]:
    """(replicas, accelerators per replica)."""
    nodes = int(rng.choice(GANG_NODES, p=GANG_WEIGHTS))
    if nodes == 1:
        return 1, int(rng.choice(SMALL_ACCELERATORS))
    return nodes, ACCELERATORS_PER_NODE


def _running(
    rng: np.random.Generator,
    pools: list[Pool],
    per_pool: np.ndarray,
    team_class: list[str],
    team_deserved: list[int],
    fill: float,
    now: float,
) -> list[Workload]:
    """Fill each pool from the front up to `fill` of its accelerators (see `_packed`).
    Each job goes to the team of the class furthest below its deserved share, so the
    state is a steady one (every team near its share) rather than a random one."""
    teams_of = {c: [t for t, tc in enumerate(team_class) if tc == c] for c in CLASSES}
    held = [0] * len(team_class)
    out: list[Workload] = []
    for pool, count in zip(pools, per_pool, strict=True):
        teams = teams_of[pool.accelerator_class]
        for per, node_names in _packed(rng, pool.name, int(count * fill)):
            team = min(teams, key=lambda t: (held[t] - team_deserved[t], t))
            held[team] += per * len(node_names)
            out.append(
                Workload(
                    key=f"run/{pool.name}-{len(out):07d}",
                    queue=f"team-{team:04d}",
                    replicas=len(node_names),
                    min_replicas=len(node_names),
                    accelerators_per_replica=per,
                    accelerator_classes=(pool.accelerator_class,),
                    priority=int(rng.integers(0, 3)),
                    created_at=now - 7200.0,
                    placement=Placement(
                        pool.site, pool.name, node_names, now - float(rng.uniform(0, 7200))
                    ),
                )
            )
    return out


def _packed(
    rng: np.random.Generator, pool: str, target: int
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Jobs drawn one by one and placed on the pool's first `target` nodes, as
    (accelerators per replica, node names): small jobs packed onto shared nodes, gangs
    on whole nodes (the last one cut to the nodes left)."""
    i = 0
    room = 0  # free accelerators left on node i - 1 for small jobs
    while i < target:
        replicas, per = _gang(rng)
        if per < ACCELERATORS_PER_NODE and room >= per:
            node_names: tuple[str, ...] = (f"{pool}-{i - 1:06d}",)
            room -= per
        elif per < ACCELERATORS_PER_NODE:
            node_names = (f"{pool}-{i:06d}",)
            room = ACCELERATORS_PER_NODE - per
            i += 1
        else:
            replicas = min(replicas, target - i)
            node_names = tuple(f"{pool}-{j:06d}" for j in range(i, i + replicas))
            room = 0
            i += replicas
        yield per, node_names


def _pending(
    rng: np.random.Generator,
    pending: int,
    team_class: list[str],
    residency_share: float,
    now: float,
    prefix: str = "job",
) -> list[Workload]:
    out = []
    n_teams = len(team_class)
    teams = rng.integers(0, n_teams, pending)
    ages = rng.uniform(0, 3600, pending)
    for i in range(pending):
        team = int(teams[i])
        replicas, per = _gang(rng)
        classes = [team_class[team]]
        if rng.random() < 0.3:
            classes.append(CLASSES[(CLASSES.index(classes[0]) + 1) % len(CLASSES)])
        residency = (
            RESIDENCIES[int(rng.integers(0, len(RESIDENCIES)))]
            if rng.random() < residency_share
            else Residency()
        )
        topo = rng.random()
        out.append(
            Workload(
                key=f"ns-{team:04d}/{prefix}-{i:07d}",
                queue=f"team-{team:04d}",
                replicas=replicas,
                min_replicas=replicas if rng.random() < 0.8 else max(1, replicas // 2),
                accelerators_per_replica=per,
                accelerator_classes=tuple(classes),
                cpu_millis_per_replica=per * 8000,
                memory_bytes_per_replica=per * 64 * 2**30,
                priority=int(rng.integers(0, 3)),
                created_at=now - float(ages[i]),
                residency=residency,
                required_topology="rack" if 1 < replicas <= NODES_PER_RACK and topo < 0.2 else None,
                preferred_topology="nvlink-domain" if 0.2 <= topo < 0.5 else None,
            )
        )
    return out
