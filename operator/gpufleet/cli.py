"""The `gpufleet` command line (also installed as `kubectl-gpufleet`).

Each area owns its own commands in a `cli` module with a `register(app)`
function; this module only assembles them, so areas never edit each other.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="gpufleet",
    help="One fairly shared, sovereignty-aware GPU fleet across sites.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# Modules that contribute commands, in the order they appear in --help.
_COMMAND_MODULES = (
    "gpufleet.dev.cli",
    "gpufleet.handlers.cli",
    "gpufleet.bench.cli",
    "gpufleet.sim.cli",
    "gpufleet.api.cli",
)


def _register_all() -> None:
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only tolerate the area itself not existing yet, never a broken import inside it.
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
