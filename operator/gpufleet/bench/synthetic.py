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
    if gpus < ACCELERATORS_PER_NODE * len(SITES) * 2:
        raise ValueError(f"gpus: must be at least {ACCELERATORS_PER_NODE * len(SITES) * 2}")
    if queues < 2:
        raise ValueError("queues: must be at least 2 (one department, one team)")
    rng = np.random.default_rng(seed)
    sites = [
        Site(name, jur, regions, certs, power_budget_watts=None)
        for name, jur, regions, certs, _ in SITES
    ]
    n_nodes = gpus // ACCELERATORS_PER_NODE
    # Two classes per site, rotating through the three classes.
    pool_specs = []
    for s, (name, *_, cost) in enumerate(SITES):
        for k in range(2):
            cls = CLASSES[(s + k) % len(CLASSES)]
            pool_specs.append((f"{name}-{cls.split('-')[1]}", name, cls, cost))
    per_pool = np.full(len(pool_specs), n_nodes // len(pool_specs))
    per_pool[: n_nodes % len(pool_specs)] += 1
    pools = []
    nodes = []
    for (pname, site, cls, cost), count in zip(pool_specs, per_pool, strict=True):
        pools.append(
            Pool(
                pname,
                site,
                cls,
                watts_per_accelerator=700.0,
                cost_per_accelerator_hour=round(2.5 * cost, 2),
                topology_keys=("rack", "nvlink-domain"),
            )
        )
        for i in range(int(count)):
            nodes.append(
                Node(
                    f"{pname}-{i:06d}",
                    pname,
                    ACCELERATORS_PER_NODE,
                    cpu_millis=192_000,
                    memory_bytes=2048 * 2**30,
                    pods=110,
                    topology=(
                        f"r{i // NODES_PER_RACK:05d}",
                        f"nv{(i % NODES_PER_RACK) // NODES_PER_NVLINK}",
                    ),
                )
            )
    capacity = dict.fromkeys(CLASSES, 0)
    for pool, count in zip(pools, per_pool, strict=True):
        capacity[pool.accelerator_class] += int(count) * ACCELERATORS_PER_NODE

    # Queue tree: departments -> teams; each team mainly uses one class.
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
    dept_deserved: list[dict[str, int]] = [dict.fromkeys(CLASSES, 0) for _ in range(n_depts)]
    for t in range(n_teams):
        dept_deserved[team_dept[t]][team_class[t]] += team_deserved[t]
    queue_list = [Queue(f"dept-{d:03d}", None, deserved=dept_deserved[d]) for d in range(n_depts)]
    for t in range(n_teams):
        limit = {}
        if rng.random() < 0.2:
            limit = {team_class[t]: 2 * team_deserved[t] + 64}
        queue_list.append(
            Queue(
                f"team-{t:04d}",
                f"dept-{team_dept[t]:03d}",
                deserved={team_class[t]: team_deserved[t]},
                limit=limit,
                over_quota_weight={team_class[t]: float(rng.choice([1.0, 1.0, 2.0, 3.0]))},
                priority=int(rng.integers(0, 3)),
                min_runtime_seconds=float(rng.choice([0.0, 600.0])),
                allowed_jurisdictions=(
                    frozenset({"DE", "FR", "NL"}) if rng.random() < 0.1 else None
                ),
            )
        )
    workloads = _running(rng, pools, per_pool, team_class, team_deserved, fill, now)
    workloads += _pending(rng, pending, team_class, residency_share, now)
    return SyntheticFleet(sites, pools, nodes, queue_list, workloads, now)


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
    """Fill each pool from the front up to `fill` of its accelerators: small jobs
    packed onto shared nodes, gangs on whole nodes. Each gang goes to the team of
    the class furthest below its deserved share, so the state is a steady one
    (every team near its share) rather than a random one."""
    teams_of = {c: [t for t, tc in enumerate(team_class) if tc == c] for c in CLASSES}
    held = [0] * len(team_class)
    out: list[Workload] = []
    for pool, count in zip(pools, per_pool, strict=True):
        teams = teams_of[pool.accelerator_class]
        target = int(count * fill)
        i = 0
        room = 0  # free accelerators left on node i - 1 for small jobs
        while i < target:
            replicas, per = _gang(rng)
            if per < ACCELERATORS_PER_NODE and room >= per:
                node_names: tuple[str, ...] = (f"{pool.name}-{i - 1:06d}",)
                room -= per
            elif per < ACCELERATORS_PER_NODE:
                node_names = (f"{pool.name}-{i:06d}",)
                room = ACCELERATORS_PER_NODE - per
                i += 1
            else:
                replicas = min(replicas, target - i)
                node_names = tuple(f"{pool.name}-{j:06d}" for j in range(i, i + replicas))
                room = 0
                i += replicas
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
