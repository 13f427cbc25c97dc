"""The `gpufleet` command line (also installed as `kubectl-gpufleet`).

One module per command group, each with a `register(app)` function; this
module only assembles them. Nothing below this package imports it.
"""

from __future__ import annotations

import typer

from gpufleet.cli import agent, bench, dev, forecast, inspect, operator, simulate, site, validate

app = typer.Typer(
    name="gpufleet",
    help="One fairly shared, sovereignty-aware GPU fleet across sites.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# In the order the groups appear in --help.
for _group in (operator, agent, site, inspect, validate, dev, bench, simulate, forecast):
    _group.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
