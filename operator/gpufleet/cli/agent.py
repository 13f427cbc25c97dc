"""`gpufleet agent`: the fence agent that runs in each member cluster."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from gpufleet.cli.common import KubeconfigOpt


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_command)


def agent_command(
    kubeconfig: KubeconfigOpt = None,
    namespace: Annotated[
        str, typer.Option(help="Namespace of the fence Lease in this (member) cluster.")
    ] = "gpufleet-system",
    origin: Annotated[
        str, typer.Option(help="Origin label of the operator whose pods this agent fences.")
    ] = "gpufleet",
    fence_seconds: Annotated[
        float, typer.Option(help="Silence after which the operator's pods are stopped.")
    ] = 60.0,
) -> None:
    """Run in a member cluster: stop gpufleet's pods there when the operator goes silent."""
    from gpufleet.control.operator import hub_client
    from gpufleet.sites.fence import Agent

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    Agent(
        hub_client(str(kubeconfig) if kubeconfig else None), namespace, origin, fence_seconds
    ).run()
