"""`gpufleet bench core`: time the scheduling core on a synthetic fleet."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gpufleet.bench.core import bench_core
from gpufleet.corebuild import stale_error

bench_app = typer.Typer(no_args_is_help=True)


@bench_app.callback()
def bench_group() -> None:
    """Benchmarks of gpufleet's components."""


@bench_app.command("core")
def core_command(
    gpus: Annotated[
        int, typer.Option(min=96, help="Accelerators in the fleet (8 per node).")
    ] = 100_000,
    queues: Annotated[int, typer.Option(min=2, help="Queues (departments and teams).")] = 1000,
    pending: Annotated[int, typer.Option(min=0, help="Pending workloads.")] = 100_000,
    repeats: Annotated[int, typer.Option(min=1, help="Cycles to time.")] = 5,
    reference: Annotated[
        bool | None,
        typer.Option(
            "--reference/--no-reference",
            help="Also time the pure-Python reference (default: only when gpus x pending"
            " <= 5e8; at 100,000 GPUs x 100,000 pending it takes minutes).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic fleet.")] = 0,
    fill: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of nodes busy with running workloads."),
    ] = 0.85,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build a synthetic fleet and time full scheduling cycles on it."""
    stale = stale_error()
    if stale:
        typer.echo(f"error: {stale}", err=True)
        raise typer.Exit(2)
    run_reference = gpus * pending <= 500_000_000 if reference is None else reference
    result = bench_core(
        gpus, queues, pending, repeats=repeats, reference=run_reference, seed=seed, fill=fill
    )
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title="gpufleet bench core")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        table.add_row(key, text)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
