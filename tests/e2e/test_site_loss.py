"""A site cut off from the operator: detected, waited for, fenced, re-placed once, never twice."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from kubernetes import client

from e2e.operator_harness import Fleet, OperatorProcess, queue_obj, wait_for, workload_obj
from e2e.tcp_proxy import CuttableProxy
from gpufleet.dev.clusters import RunningFleet
from gpufleet.dev.register import flat_kubeconfig, secret_name

SITE = "localzone-ams"
FENCE = 10
# Detection takes about 20 s; fence + grace + 5 s slack must leave a visible window after it.
GRACE = 20


@pytest.fixture
def partitionable(
    op_fleet: RunningFleet, fleet: Fleet, operator: OperatorProcess, tmp_path: Path
) -> Iterator[CuttableProxy]:
    """Route the operator's connection to SITE through a proxy; run the site's fence agent."""
    member = op_fleet.clusters[SITE]
    kubeconfig = yaml.safe_load(flat_kubeconfig(member))
    url = urlparse(kubeconfig["clusters"][0]["cluster"]["server"])
    proxy = CuttableProxy(url.hostname or "127.0.0.1", url.port or 443)
    proxied = yaml.safe_load(flat_kubeconfig(member))
    proxied["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    operator.stop()
    fleet.apply(_secret(proxied))
    operator.start(extra=["--fence-seconds", str(FENCE), "--site-loss-grace", str(GRACE)])
    agent_log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - closed below
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpufleet.cli",
            "agent",
            "--kubeconfig",
            str(member.kubeconfig),
            "--fence-seconds",
            str(FENCE),
        ],
        stdout=agent_log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proxy
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        agent_log.close()
        proxy.restore()
        operator.stop()
        fleet.apply(_secret(kubeconfig))
        operator.start()
        proxy.close()


def _secret(kubeconfig: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(SITE), "namespace": "gpufleet-system"},
        "type": "Opaque",
        "data": {"kubeconfig": data},
    }


def _live_pods(fleet: Fleet, cluster: str, ns: str, name: str) -> list[Any]:
    core = client.CoreV1Api(fleet.clients[cluster])
    sel = f"gpufleet.io/workload={name},gpufleet.io/workload-namespace={ns}"
    return [
        p
        for p in core.list_namespaced_pod(ns, label_selector=sel).items
        if p.metadata.deletion_timestamp is None and p.status.phase not in ("Succeeded", "Failed")
    ]


def _events(fleet: Fleet, ns: str, name: str) -> list[Any]:
    return list(
        client.CoreV1Api(fleet.clients[fleet.hub.name])
        .list_namespaced_event(ns, field_selector=f"involvedObject.name={name}")
        .items
    )


@pytest.mark.tiers
def test_cut_off_site_is_detected_fenced_and_its_work_placed_again_exactly_once(
    fleet: Fleet, team: str, partitionable: CuttableProxy
) -> None:
    q = f"q-{team}"
    fleet.apply(
        queue_obj(
            q,
            [team],
            [
                {"acceleratorClass": "nvidia-h200", "deserved": 16},
                {"acceleratorClass": "nvidia-h100", "deserved": 16},
            ],
        )
    )
    try:
        common: dict[str, Any] = {
            "gpus": 8,
            "classes": ("nvidia-h200", "nvidia-h100"),
            "residency": {"regions": ["EU"]},
            "sitePreferences": [SITE],
        }
        fleet.apply(
            workload_obj(team, "movable", q, onSiteLoss="Requeue", **common),
            workload_obj(team, "patient", q, onSiteLoss="Wait", **common),
        )
        for name in ("movable", "patient"):
            w = fleet.wait_phase(team, name, {"Running"})
            assert w["status"]["placement"]["site"] == SITE

        def disconnected() -> bool:
            conds = (fleet.site(SITE).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Connected" and c["status"] == "False" for c in conds)

        wait_for("the site to show as connected before the cut", lambda: not disconnected())
        cut_at = time.monotonic()
        # Old connections go silent instead of failing: watches opened before the cut
        # must not be trusted after it (the operator restarts them on reconnection).
        partitionable.cut(blackhole=True)

        wait_for("the site to be marked disconnected", disconnected, timeout=60)
        detected = time.monotonic() - cut_at
        print(f"site disconnection detected after {detected:.1f}s")
        assert detected <= 40, f"took {detected:.0f}s"

        def reachable(name: str) -> str | None:
            conds = (fleet.workload(team, name).get("status") or {}).get("conditions") or []
            return next((c["status"] for c in conds if c["type"] == "SiteReachable"), None)

        wait_for(
            "the patient workload to say its site is unreachable",
            lambda: reachable("patient") == "False",
        )

        def reason(name: str) -> str | None:
            conds = (fleet.workload(team, name).get("status") or {}).get("conditions") or []
            return next((c["reason"] for c in conds if c["type"] == "SiteReachable"), None)

        overlaps = 0

        def count_overlaps() -> None:
            nonlocal overlaps
            for name in ("movable", "patient"):
                at_site = _live_pods(fleet, SITE, team, name)
                elsewhere = [
                    p
                    for s in ("onprem-fra", "factory-osl")
                    for p in _live_pods(fleet, s, team, name)
                ]
                if at_site and elsewhere:
                    overlaps += 1

        # Past fence + grace the agent has fenced, but the operator cannot read its record
        # through the cut: silence is no evidence, so the workload stays and says so.
        def unconfirmed() -> bool:
            count_overlaps()
            return reason("movable") == "FenceUnconfirmed"

        wait_for("the movable workload to wait for evidence", unconfirmed, timeout=90, interval=0.5)
        assert fleet.workload(team, "movable")["status"]["placement"]["site"] == SITE
        wait_for(
            "the agent to stop the cut-off site's pods",
            lambda: not _live_pods(fleet, SITE, team, "movable"),
            timeout=60,
        )

        partitionable.restore()
        wait_for("the site to reconnect", lambda: not disconnected(), timeout=60)

        # Back: the operator reads the agent's record (a fence after its last renewal), so
        # the movable workload is placed again, anywhere, with a new epoch.
        def replaced() -> dict[str, Any] | None:
            count_overlaps()
            w = fleet.workload(team, "movable")
            placement = (w.get("status") or {}).get("placement") or {}
            site = placement.get("site")
            if placement.get("epoch") == 2 and site and _live_pods(fleet, site, team, "movable"):
                return w
            return None

        w = wait_for("the movable workload to be placed again", replaced, timeout=90, interval=0.5)
        assert (
            "fence agent"
            in next(e for e in _events(fleet, team, "movable") if e.reason == "SiteLost").message
        )
        wait_for(
            "the patient workload to say its site answers", lambda: reachable("patient") == "True"
        )
        wait_for(
            "the patient workload's pods to be back at its site",
            lambda: len(_live_pods(fleet, SITE, team, "patient")) == 1,
            timeout=60,
        )
        patient = fleet.workload(team, "patient")
        assert patient["status"]["placement"]["epoch"] == 1  # the same epoch, made again
        assert any(e.reason == "PodsRecreated" for e in _events(fleet, team, "patient"))
        count_overlaps()
        assert overlaps == 0, "a workload ran at two sites at once"
        site = w["status"]["placement"]["site"]
        assert len(_live_pods(fleet, site, team, "movable")) == 1
    finally:
        fleet.hub.kubectl("delete", "queue", q, "--wait=false", check=False)
