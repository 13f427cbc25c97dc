"""`gpufleet run`: the operator."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from gpufleet.cli.common import KubeconfigOpt


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def run_command(
    namespace: Annotated[
        str,
        typer.Option(
            envvar="GPUFLEET_NAMESPACE",
            help="The operator's namespace (member kubeconfig Secrets live here).",
        ),
    ] = "gpufleet-system",
    kubeconfig: KubeconfigOpt = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address for /metrics, /healthz, /readyz.")
    ] = "127.0.0.1",
    metrics_port: Annotated[
        int, typer.Option(help="Port for metrics and probes; -1 disables them.")
    ] = 8080,
    origin: Annotated[
        str, typer.Option(help="Label value marking the pods this operator owns.")
    ] = "gpufleet",
    resync: Annotated[
        float, typer.Option(help="Seconds between scheduling cycles when nothing changes.")
    ] = 5.0,
    fence_seconds: Annotated[
        int, typer.Option(help="Silence after which a member's agent stops our pods.")
    ] = 60,
    site_loss_grace: Annotated[
        float,
        typer.Option(help="Extra wait after the fence before re-placing a lost site's workloads."),
    ] = 30.0,
    disconnect_after: Annotated[
        float,
        typer.Option(help="Seconds without an answer before a member is marked disconnected."),
    ] = 20.0,
    leader_elect: Annotated[
        bool,
        typer.Option(help="Elect one leader among replicas through a Lease in --namespace."),
    ] = True,
    leader_lease: Annotated[
        str, typer.Option(help="Name of the leader Lease.")
    ] = "gpufleet-leader",
    leader_identity: Annotated[
        str | None,
        typer.Option(help="This replica's identity in the Lease (default: host_random)."),
    ] = None,
    lease_duration: Annotated[
        float, typer.Option(help="Seconds a standby waits for an unrenewed lease to lapse.")
    ] = 15.0,
    renew_deadline: Annotated[
        float, typer.Option(help="Seconds without a renewal after which the leader stops writing.")
    ] = 10.0,
    retry_period: Annotated[
        float, typer.Option(help="Seconds between attempts to acquire or renew the lease.")
    ] = 2.0,
    event_qps: Annotated[
        float,
        typer.Option(
            envvar="GPUFLEET_EVENT_QPS",
            help="New Events per second beyond the burst; the rest are dropped (statuses keep them).",
        ),
    ] = 20.0,
    event_burst: Annotated[
        int, typer.Option(envvar="GPUFLEET_EVENT_BURST", help="New Events allowed in a burst.")
    ] = 200,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the operator: watch every site, schedule, dispatch pods, keep statuses current."""
    import kopf

    import gpufleet.handlers.operator  # noqa: F401  (registers the handlers)
    from gpufleet.control.operator import OperatorConfig

    if leader_elect:
        from gpufleet.control.leader import ElectionConfig

        try:  # refuse timings that could let two replicas write at once, before starting
            ElectionConfig(
                identity="check",
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    if kubeconfig is not None:
        os.environ["KUBECONFIG"] = str(kubeconfig)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Kopf logs every handler call at INFO; gpufleet's own log and Events say what matters.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    config = OperatorConfig(
        namespace=namespace,
        origin=origin,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        resync_seconds=resync,
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        fence_seconds=fence_seconds,
        site_loss_grace_seconds=site_loss_grace,
        disconnect_after_seconds=disconnect_after,
        leader_elect=leader_elect,
        leader_lease=leader_lease,
        leader_identity=leader_identity or "",
        lease_duration_seconds=lease_duration,
        renew_deadline_seconds=renew_deadline,
        retry_period_seconds=retry_period,
        event_qps=event_qps,
        event_burst=event_burst,
    )
    kopf.run(standalone=True, clusterwide=True, memo=kopf.Memo(config=config))
