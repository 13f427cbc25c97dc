"""What the commands print: a result as JSON (`--json`) or as tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table


def print_result(
    out: Console, data: Any, as_json: bool, render: Callable[[], Iterable[RenderableType]]
) -> None:
    """`data` as JSON with `--json`; otherwise what `render` makes of it, one after another
    (`render` runs only then, as it may read more than `data`)."""
    if as_json:
        out.print_json(json.dumps(data))
        return
    for renderable in render():
        out.print(renderable)


def table(title: str, *columns: str, caption: str | None = None) -> Table:
    t = Table(title=title, caption=caption)
    for c in columns:
        t.add_column(c)
    return t


def measure_table(title: str, measures: Iterable[tuple[str, Any]], value: str = "value") -> Table:
    """Two columns, a measure's name and its value (right-aligned, as `str` writes it)."""
    t = Table(title=title)
    t.add_column("measure")
    t.add_column(value, justify="right")
    for name, v in measures:
        t.add_row(name, str(v))
    return t
