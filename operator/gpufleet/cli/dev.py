"""`gpufleet dev ...`: local multi-site fleets of real control planes with fake GPU nodes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpufleet.cli._output import measure_table, print_result, table
from gpufleet.cli.common import console, fail, failing_on, out
from gpufleet.dev import clusters
from gpufleet.dev import prometheus as devprom
from gpufleet.dev.inventory import ClusterInventory, fleet_inventory
from gpufleet.dev.nodes import DEFAULT_FLEET
from gpufleet.dev.tools import ToolsMissingError, find_tools
from gpufleet.fleetfile import Fleet, FleetFileError, load_fleet

dev = typer.Typer(
    help="Local multi-site test fleets (real control planes, KWOK or hollow-kubelet GPU nodes).",
    no_args_is_help=True,
)


# What the local tooling raises when it cannot go on; the message says what to do.
TOOLING_ERRORS = (ToolsMissingError, clusters.FleetError)


def register(app: typer.Typer) -> None:
    app.add_typer(dev, name="dev")


def inventory_table(fleet: clusters.RunningFleet, inventory: list[ClusterInventory]) -> Table:
    hollow = any(inv.hollow for inv in inventory)
    columns = ["site", "cluster", "nodes (ready)", "accelerators", "API server"]
    if hollow:
        columns.insert(3, "hollow kubelets (running, ready)")
    t = table(
        f"fleet {fleet.name}",
        *columns,
        caption="kubeconfigs: " + ", ".join(str(c.kubeconfig) for c in fleet.clusters.values()),
    )
    for inv in inventory:
        accel = "\n".join(f"{n} × {cls}" for cls, n in inv.accelerators.items()) or "-"
        name = inv.cluster + (" (hub)" if fleet.clusters[inv.cluster].hub else "")
        row = [inv.site, name, f"{inv.nodes} ({inv.nodes_ready})", accel, inv.server]
        if hollow:
            row.insert(3, f"{inv.hollow} ({inv.hollow_running}, {inv.hollow_ready})")
        t.add_row(*row)
    return t


def _load_fleet(fleet_file: Path) -> Fleet:
    with failing_on(FleetFileError):
        return load_fleet(fleet_file)


def _print_dim(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


@dev.command("up")
def up_command(
    fleet_file: Annotated[
        Path,
        typer.Argument(help="Fleet file (YAML); the built-in three-site dev fleet if omitted."),
    ] = DEFAULT_FLEET,
    name: Annotated[
        str | None, typer.Option(help="Run the fleet under another name (e.g. for tests).")
    ] = None,
    runtime: Annotated[
        str, typer.Option(help="kwokctl runtime: binary (default, no Docker) or kind.")
    ] = "binary",
    reuse: Annotated[
        bool, typer.Option(help="If the fleet is already up, use it as it is.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the running fleet as JSON.")
    ] = False,
    with_prometheus: Annotated[
        bool,
        typer.Option(
            "--prometheus/--no-prometheus",
            help="Start a Prometheus (127.0.0.1) scraping the operator with the chart's rules.",
        ),
    ] = True,
    scrape: Annotated[
        list[str] | None,
        typer.Option(
            help="Operator metrics endpoint(s) to scrape, host:port (default: 127.0.0.1:8080)."
        ),
    ] = None,
) -> None:
    """Bring up one real cluster per fleet entry with its simulated GPU nodes."""
    fleet = _load_fleet(fleet_file)
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:

        def node_progress(cluster: str, total: int):  # type: ignore[no-untyped-def]
            task = bar.add_task(f"{cluster}: nodes", total=total)
            return lambda n: bar.advance(task, n)

        with failing_on(*TOOLING_ERRORS):
            running = clusters.up(
                fleet,
                source=str(fleet_file),
                name=name,
                runtime=runtime,
                reuse=reuse,
                progress=lambda msg: bar.console.print(
                    f"[dim]{time.monotonic() - started:6.1f}s[/dim] {msg}"
                ),
                node_progress=node_progress,
            )
    prom = (
        _start_prometheus(running.name, scrape or list(devprom.DEFAULT_TARGETS))
        if with_prometheus
        else None
    )
    elapsed = time.monotonic() - started
    print_result(
        out,
        {
            **running.to_json(),
            "prometheus": prom.url if prom else None,
            "seconds": round(elapsed, 2),
        },
        as_json,
        lambda: [inventory_table(running, fleet_inventory(running))],
    )
    if not as_json and prom is not None:
        console.print(
            f"prometheus on [cyan]{prom.url}[/cyan] scraping"
            f" {', '.join(scrape or devprom.DEFAULT_TARGETS)}"
        )
    if not as_json:
        console.print(
            f"fleet [bold]{running.name}[/bold] up in {elapsed:.1f}s. Reach a cluster with "
            f"[cyan]kubectl --kubeconfig {running.hub.kubeconfig} get nodes[/cyan]; "
            f"stop it with [cyan]gpufleet dev down --name {running.name}[/cyan]."
        )


def _start_prometheus(fleet_name: str, targets: list[str]) -> devprom.RunningPrometheus | None:
    """The fleet's Prometheus (started, or found running), or None with a note when the
    binary is not built yet."""
    tools = find_tools()
    if tools.prometheus is None:
        console.print(
            "[yellow]no prometheus in the tool cache: run 'make tools' to get one[/yellow]"
        )
        return None
    where = devprom.directory(clusters.state_dir(), fleet_name)
    try:
        running = devprom.start(
            tools.prometheus, where, devprom.chart_rule_groups(tools.helm), targets
        )
    except devprom.PrometheusError as exc:
        raise fail(str(exc)) from exc
    devprom.set_targets(where, targets)
    return running


@dev.command("down")
def down_command(
    name: Annotated[str, typer.Option(help="Name of the fleet to stop.")] = "dev",
    all_fleets: Annotated[bool, typer.Option("--all", help="Stop every local fleet.")] = False,
) -> None:
    """Stop a fleet's clusters and remove their state; no process is left behind."""
    names = clusters.running_fleets() if all_fleets else [name]
    for fleet_name in names:
        removed = clusters.down(fleet_name, progress=_print_dim)
        console.print(f"fleet {fleet_name}: removed {len(removed)} cluster(s)")


@dev.command("status")
def status_command(
    name: Annotated[str, typer.Option(help="Name of the fleet.")] = "dev",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the inventory of a running fleet: per site, cluster, nodes and accelerators."""
    running = clusters.load_running(name)
    if running is None:
        raise fail(
            f"no fleet '{name}' is up; start one with 'gpufleet dev up' (running: {clusters.running_fleets() or 'none'})"
        )
    inventory = fleet_inventory(running)
    print_result(
        out,
        [inv.as_dict() for inv in inventory],
        as_json,
        lambda: [inventory_table(running, inventory)],
    )


@dev.command("bench")
def bench_command(
    nodes: Annotated[int, typer.Option(help="Fake GPU nodes to create in one cluster.")] = 1000,
    hollow: Annotated[
        int | None,
        typer.Option(
            help="Instead: start N hollow kubelets (kubemark) at once; time to Ready, memory, CPU, load."
        ),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(help="With --hollow: seconds of steady state measured after all are Ready."),
    ] = 60.0,
    keep: Annotated[
        bool,
        typer.Option(help="Leave the cluster up afterwards (fleet 'bench' or 'bench-hollow')."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Time a cluster start and the creation of N GPU nodes; report control-plane memory."""
    from gpufleet.dev.bench import bench_hollow, bench_nodes

    if hollow is not None:
        with (
            console.status(f"starting a control plane and {hollow} hollow kubelets"),
            failing_on(*TOOLING_ERRORS),
        ):
            measured = bench_hollow(hollow, settle=settle, keep=keep)
        print_result(
            out,
            measured,
            as_json,
            lambda: [
                measure_table(
                    f"{hollow} hollow kubelets on {measured['cores']} cores",
                    _flattened(measured),
                )
            ],
        )
        return

    with (
        console.status(f"starting a control plane and creating {nodes} nodes"),
        failing_on(*TOOLING_ERRORS),
    ):
        result = bench_nodes(nodes, keep=keep)
    print_result(
        out,
        result,
        as_json,
        lambda: [measure_table(f"one cluster, {nodes} fake 8-GPU nodes", _node_measures(result))],
    )


def _flattened(measured: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """A measure per value, `key sub` for the values of a nested dict."""
    for key, value in measured.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                yield f"{key} {sub}", v
        else:
            yield key, value


def _node_measures(result: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key in (
        "control_plane_start_seconds",
        "create_nodes_seconds",
        "nodes_ready_seconds",
        "nodes_per_second",
        "rss_total_mb",
    ):
        yield key, result[key]
    for comp, mb in result["rss_mb"].items():
        yield f"rss_mb {comp}", mb


@dev.command("register")
def register_command(
    fleet_file: Annotated[
        Path, typer.Argument(help="The fleet file the fleet was started from.")
    ] = DEFAULT_FLEET,
    name: Annotated[str | None, typer.Option(help="Name the fleet runs under.")] = None,
    namespace: Annotated[
        str, typer.Option(help="The operator's namespace (holds member kubeconfigs).")
    ] = "gpufleet-system",
    sites: Annotated[
        bool, typer.Option(help="Also create Sites and GpuPools from the fleet file.")
    ] = True,
) -> None:
    """Install the CRDs on the hub, store member kubeconfigs as Secrets, create Sites and GpuPools."""
    from gpufleet.dev.register import register

    fleet = _load_fleet(fleet_file)
    running = clusters.load_running(name or fleet.name)
    if running is None:
        raise fail(f"fleet '{name or fleet.name}' is not up; run 'gpufleet dev up' first")
    with failing_on(clusters.FleetError):
        register(fleet, running, namespace, sites=sites)
    console.print(
        f"registered fleet {running.name} on hub {running.hub.name} (namespace {namespace})"
    )


@dev.command("throughput")
def throughput_command(
    nodes: Annotated[int, typer.Option(help="Fake 8-GPU nodes in the cluster.")] = 1000,
    workloads: Annotated[int, typer.Option(help="Single-pod workloads to admit.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Workloads admitted and running per second, next to the API server's own pod ceiling."""
    from gpufleet.dev.throughput import measure

    with failing_on(*TOOLING_ERRORS, TimeoutError):
        result = measure(nodes, workloads, progress=_print_dim)
    print_result(
        out,
        result,
        as_json,
        lambda: [
            measure_table(
                f"{workloads} single-pod workloads on {nodes} nodes",
                _throughput_measures(result),
                value="per second",
            )
        ],
    )


def _throughput_measures(result: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for k, v in result["api_server_ceiling"].items():
        yield f"API server ceiling: {k}", v
    for k, v in result["operator"].items():
        yield f"gpufleet: {k}", v
    yield "ratio (running/s vs ceiling)", result["ratio_running_vs_ceiling"]


# -- `gpufleet dev scale` (issue #16): kept as one block at the end so it merges on its own.


@dev.command("scale")
def scale_command(
    gpus: Annotated[
        int, typer.Option(help="GPUs in total (8-GPU KWOK nodes, three clusters).")
    ] = 10000,
    workloads: Annotated[int, typer.Option(help="Workloads of mixed shapes to submit.")] = 2000,
    rate: Annotated[float, typer.Option(help="Workloads submitted per second.")] = 100.0,
    steady_seconds: Annotated[
        float, typer.Option(help="Seconds of steady cycles measured once all are decided.")
    ] = 30.0,
    keep: Annotated[bool, typer.Option(help="Leave the fleet ('scale') up afterwards.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The operator over three real control planes at N GPUs: cycle time by step, RSS, writes."""
    from gpufleet.dev.scale import measure as measure_scale

    with failing_on(*TOOLING_ERRORS, TimeoutError):
        result = measure_scale(
            gpus,
            workloads,
            rate=rate,
            steady_seconds=steady_seconds,
            keep=keep,
            progress=_print_dim,
        )
    print_result(
        out,
        result,
        as_json,
        lambda: [
            measure_table(
                f"{workloads} workloads on {gpus} GPUs over three clusters",
                (
                    (key, json.dumps(value) if isinstance(value, dict) else value)
                    for key, value in result.items()
                ),
            )
        ],
    )
