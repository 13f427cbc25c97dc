"""Two operator replicas: kill -9 the leader in the middle of a burst; the standby takes over."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2e import invariants
from e2e.operator_harness import Fleet, OperatorProcess, queue_obj, wait_for
from e2e.test_reclaim_and_restart import _burst
from gpufleet.api.v1alpha1 import GROUP, VERSION

LIMITS = {"nvidia-h100": 48, "nvidia-h200": 96, "aws-trainium2": 64}
# Shorter than the defaults (15/10/2) so that a takeover plus a cycle fits in 15 s: the
# standby waits one lease duration from the last renewal it saw, which it may have seen up
# to a retry period (+20 % jitter) before the kill. With the defaults the same wait is
# 13-20 s after the kill.
TIMINGS = ["--lease-duration", "10", "--renew-deadline", "7", "--retry-period", "1"]


def admissions(op: OperatorProcess) -> float:
    """Admissions this replica has recorded (the admission-wait histogram's count)."""
    try:
        text = op.metrics()
    except OSError:
        return 0.0
    return sum(
        float(m.group(1))
        for m in re.finditer(
            r"^gpufleet_admission_wait_duration_seconds_count\{[^}]*\} (\S+)$", text, re.M
        )
    )


@pytest.fixture
def pair(
    fleet: Fleet, operator: OperatorProcess, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    """Two replicas in place of the session's operator, which is restarted afterwards."""
    operator.stop()  # releases the lease: the pair elects among themselves
    a = OperatorProcess(fleet.hub, tmp_path / "a")
    b = OperatorProcess(fleet.hub, tmp_path / "b")
    for op in (a, b):
        op.log_dir.mkdir()
        op.start(TIMINGS)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
        operator.start()


def test_kill_9_of_the_leader_mid_burst_the_standby_places_within_15_s(
    fleet: Fleet, pair: tuple[OperatorProcess, OperatorProcess], team: str
) -> None:
    a, b = pair
    leader = wait_for("one replica to lead", lambda: next((o for o in pair if o.leads()), None))
    standby = b if leader is a else a
    assert not standby.leads()
    assert standby.readyz().startswith("ok: standby"), standby.readyz()
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
    burst = _burst(team, queues, 1000, "kwok")
    custom = client.CustomObjectsApi(fleet.api)
    try:

        def create(obj: dict[str, Any]) -> None:
            custom.create_namespaced_custom_object(GROUP, VERSION, team, "workloads", obj)

        with ThreadPoolExecutor(max_workers=8) as pool:
            submitted = pool.map(create, burst)
            # Mid-flight: the leader has admitted some and is busy with the rest.
            wait_for("the leader's first admissions", lambda: admissions(leader) >= 10, 60, 0.2)
            killed_at = time.monotonic()
            leader.kill9()
            list(submitted)
        wait_for("the standby to lead", standby.leads, timeout=30, interval=0.2)
        led_at = time.monotonic()
        wait_for("the new leader to place", lambda: admissions(standby) > 0, 30, 0.2)
        placed_at = time.monotonic()
        caught_up = [
            line
            for log in sorted(standby.log_dir.glob("operator-*.log"))
            for line in log.read_text(errors="replace").splitlines()
            if "caught up with the API server" in line
        ]
        print(
            f"\nkill -9 → standby leads in {led_at - killed_at:.1f}s, "
            f"places in {placed_at - killed_at:.1f}s; {caught_up[-1:]}"
        )
        assert caught_up, "the new leader wrote before catching up with the API server"
        assert placed_at - killed_at <= 15

        def settled() -> bool:
            items = fleet.workloads(team)
            return len(items) == len(burst) and all(
                (w.get("status") or {}).get("phase") not in (None, "Pending", "Admitted")
                or (w.get("status") or {}).get("verdicts")
                for w in items
            )

        wait_for("all 1000 workloads to be decided", settled, timeout=300, interval=3)
        wait_for(
            "the pods of workloads no longer placed to be removed",
            lambda: not invariants.unplaced_with_pods(fleet, team),
            timeout=60,
            interval=2,
        )
        try:
            phases = invariants.check(fleet, team, {o["metadata"]["name"] for o in burst}, LIMITS)
        except AssertionError:
            # What the replicas' logs are read against (they stay in the test's tmp_path).
            (a.log_dir.parent / "workloads.json").write_text(json.dumps(fleet.workloads(team)))
            raise
        print(f"phases after the failover: {phases}")
        assert phases.get("Running", 0) > 0
    finally:
        fleet.delete_all_workloads(team)
        fleet.hub.kubectl("delete", "queue", *queues, "--wait=false", check=False)
        wait_for(
            "the burst's pods to be removed",
            lambda: not any(fleet.pods(c, team) for c in fleet.clients),
            timeout=180,
            interval=2,
        )
