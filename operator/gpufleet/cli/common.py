"""Options and consoles shared by the command modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

# Messages and progress go to stderr, results to stdout, so `--json` output can be piped.
console = Console(stderr=True)
out = Console()

KubeconfigOpt = Annotated[
    Path | None,
    typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig of the hub cluster."),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error (say what to do next in `message`) and return the exit to raise."""
    console.print("[red]error:[/red]", end=" ")
    # No markup (messages hold brackets such as deserved[h100]) and no wrapping (paths).
    console.print(message, markup=False, soft_wrap=True, highlight=False)
    return typer.Exit(code=code)


@contextmanager
def failing_on(*errors: type[Exception]) -> Iterator[None]:
    """`fail` with the message of any of `errors` raised inside (their messages say what to do)."""
    try:
        yield
    except errors as exc:
        raise fail(str(exc)) from exc
