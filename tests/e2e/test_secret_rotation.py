"""A member's kubeconfig Secret is watched: rotating or deleting it takes effect live."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from e2e.operator_harness import Fleet, OperatorProcess, free_port, wait_for
from gpufleet.dev.clusters import RunningFleet
from gpufleet.dev.register import flat_kubeconfig, secret_name

SITE = "factory-osl"
NAMESPACE = "gpufleet-system"


def _secret(kubeconfig: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(SITE), "namespace": NAMESPACE},
        "type": "Opaque",
        "data": {"kubeconfig": data},
    }


def _connection(fleet: Fleet) -> dict[str, Any]:
    return dict((fleet.site(SITE).get("status") or {}).get("connection") or {})


def test_rotating_or_deleting_a_member_secret_reconnects_without_a_restart(
    op_fleet: RunningFleet, fleet: Fleet, operator: OperatorProcess
) -> None:
    good = yaml.safe_load(flat_kubeconfig(op_fleet.clusters[SITE]))
    elsewhere = yaml.safe_load(flat_kubeconfig(op_fleet.clusters[SITE]))
    # A port nothing listens on: the connection made from this kubeconfig cannot answer.
    elsewhere["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    starts, pid = operator.starts, operator.proc.pid if operator.proc else None

    def state(expected: str, reason: str | None = None) -> dict[str, Any] | None:
        conn = _connection(fleet)
        ok = conn.get("state") == expected and (reason is None or conn.get("reason") == reason)
        return conn if ok else None

    try:
        wait_for("the member to be connected", lambda: state("Connected"), timeout=60)

        fleet.apply(_secret(elsewhere))
        wait_for(
            "the member to be connected through the rotated kubeconfig (which cannot answer)",
            lambda: state("Disconnected", "APIServerUnreachable"),
            timeout=60,
        )
        fleet.apply(_secret(good))
        wait_for("the member to reconnect after the rotation back", lambda: state("Connected"))

        fleet.hub.kubectl("delete", "secret", secret_name(SITE), "-n", NAMESPACE)
        wait_for(
            "the member to be disconnected once its Secret is gone",
            lambda: state("Disconnected", "KubeconfigSecretMissing"),
        )
        fleet.apply(_secret(good))
        wait_for("the member to reconnect when its Secret returns", lambda: state("Connected"))

        # All of it was the watch: the operator was neither restarted nor replaced.
        assert operator.starts == starts
        assert operator.proc is not None
        assert operator.proc.pid == pid
        assert operator.proc.poll() is None
    finally:
        fleet.apply(_secret(good))
        wait_for("the member to be connected again", lambda: state("Connected"), timeout=60)
