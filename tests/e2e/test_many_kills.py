"""Kill -9 either replica at random moments, many times, during a run; nothing is lost."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2e import invariants
from e2e.operator_harness import Fleet, OperatorProcess, queue_obj, wait_for
from e2e.test_leader_failover import LIMITS, TIMINGS, pair
from e2e.test_reclaim_and_restart import _burst
from gpufleet.api.v1alpha1 import GROUP, VERSION

__all__ = ["pair"]  # the fixture, used by name

# `make test` runs a short storm; `make test-kills` the full one (100 kills, 2,000
# workloads), which takes far longer than CI's budget on two cores.
KILLS = int(os.environ.get("GPUFLEET_TEST_KILLS", "20"))
WORKLOADS = int(os.environ.get("GPUFLEET_TEST_KILL_WORKLOADS", "400"))


def last_line(op: OperatorProcess) -> str:
    """What the replica last logged before it died: where the kill landed."""
    logs = sorted(op.log_dir.glob("operator-*.log"), key=lambda p: p.stat().st_mtime)
    lines = [
        line for line in logs[-1].read_text(errors="replace").splitlines() if " gpufleet." in line
    ]
    return lines[-1].split(" ", 3)[-1][:110] if lines else "(nothing logged yet)"


@pytest.mark.slow
def test_many_kills_of_either_replica_lose_and_duplicate_nothing(
    fleet: Fleet, pair: tuple[OperatorProcess, OperatorProcess], team: str, tmp_path: Path
) -> None:
    rng = random.Random(16)
    queues = [f"q-{team}-{k}" for k in range(3)]
    fleet.apply(
        *[
            queue_obj(
                q,
                [team],
                [
                    {"acceleratorClass": c, "deserved": n // 2, "limit": n}
                    for c, n in LIMITS.items()
                ],
            )
            for q in queues
        ]
    )
    # Short runs free capacity all along, so that every kill lands among admissions,
    # pod creations, runtime ends and pod deletions.
    burst = _burst(team, queues, WORKLOADS, "kwok")
    for w in burst:
        w["spec"]["maxRuntimeSeconds"] = 20
    custom = client.CustomObjectsApi(fleet.api)
    waves = [burst[i::KILLS] for i in range(KILLS)]
    landed: list[dict[str, Any]] = []
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for i, wave in enumerate(waves):
                # Random moments (the experiment's schedule, not waits for anything): a
                # while after the last kill, then a wave, then the kill a fraction of a
                # second into it, so that it lands while that wave is being placed or
                # started (on an idle fleet a wave can be running within 0.2-3 s).
                time.sleep(rng.uniform(0.2, 3.0))
                list(
                    pool.map(
                        lambda o: custom.create_namespaced_custom_object(
                            GROUP, VERSION, team, "workloads", o
                        ),
                        wave,
                    )
                )
                time.sleep(rng.uniform(0.0, 0.5))
                victim = rng.choice(pair)
                role = "leader" if victim.leads() else "standby"
                phases = Counter(
                    (w.get("status") or {}).get("phase", "Pending") for w in fleet.workloads(team)
                )
                victim.kill9()
                landed.append(
                    {
                        "kill": i + 1,
                        "replica": "a" if victim is pair[0] else "b",
                        "role": role,
                        "admitted_not_running": phases.get("Admitted", 0),
                        "running": phases.get("Running", 0),
                        "pending": phases.get("Pending", 0),
                        "doing": last_line(victim),
                    }
                )
                victim.start(TIMINGS)
        print(
            f"\n{'kill':>4} {'who':>3} {'role':>7} {'adm':>4} {'run':>4} {'pend':>5}  last log line"
        )
        for k in landed:
            print(
                f"{k['kill']:>4} {k['replica']:>3} {k['role']:>7} {k['admitted_not_running']:>4} "
                f"{k['running']:>4} {k['pending']:>5}  {k['doing']}"
            )
        roles = Counter(k["role"] for k in landed)
        print(f"kills by role: {dict(roles)}")
        assert roles["leader"] > 0, "no kill hit a leader"
        # Mid-flight: work was waiting or being started at every kill.
        assert all(k["pending"] + k["admitted_not_running"] > 0 for k in landed)

        def settled() -> bool:
            items = fleet.workloads(team)
            return len(items) == len(burst) and all(
                (w.get("status") or {}).get("phase") not in (None, "Admitted")
                and (
                    (w.get("status") or {}).get("phase") != "Pending"
                    or (w.get("status") or {}).get("verdicts")
                )
                for w in items
            )

        wait_for("every workload decided after the last kill", settled, timeout=600, interval=3)
        wait_for(
            "the pods of workloads no longer placed to be removed",
            lambda: not invariants.unplaced_with_pods(fleet, team),
            timeout=60,
            interval=2,
        )
        phases = invariants.check(fleet, team, {o["metadata"]["name"] for o in burst}, LIMITS)
        print(f"phases at the end: {phases}")
    finally:
        fleet.delete_all_workloads(team)
        fleet.hub.kubectl("delete", "queue", *queues, "--wait=false", check=False)
        wait_for(
            "the run's pods to be removed",
            lambda: not any(fleet.pods(c, team) for c in fleet.clients),
            timeout=300,
            interval=2,
        )
