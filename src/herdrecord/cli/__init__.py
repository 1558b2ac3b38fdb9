"""The `herdrecord` command line: each command parses, calls one library function, renders.

`common` holds what commands share; each other module is one command group and registers
its commands on the app when imported. Importing this package loads none of them: `main`
answers `herdrecord`, `--help` and `--version` from the manifest (`cli/commands.json`) and
loads the commands only to run one; `app` (for tests and embedding) loads them all.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

__all__ = ["app", "load_app", "main", "write_command_manifest"]

COMMAND_MODULES = (
    "animals",
    "budget",
    "cameras",
    "check",
    "embed",
    "events",
    "export",
    "fleet",
    "identifiers",
    "ingest",
    "journal",
    "pictures",
    "query",
    "queue",
    "records",
    "review",
    "serve",
    "sql",
    "timeline",
)
# Answered from the manifest, without importing a command.
_QUICK: tuple[list[str], ...] = ([], ["-h"], ["--help"], ["-V"], ["--version"])


def load_app() -> typer.Typer:
    """Import every command module (each registers its commands) and return the app."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"herdrecord.cli.{name}")
    from herdrecord.cli.root import app

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return load_app()
    raise AttributeError(f"module 'herdrecord.cli' has no attribute {name!r}")


def write_command_manifest() -> None:
    """Write `cli/commands.json` from the real commands (`make schemas` runs it)."""
    from herdrecord.cli.manifest import write_manifest

    print(write_manifest(load_app()))


def main() -> None:
    """Run the CLI; user errors print one line and exit non-zero, without a traceback."""
    if sys.argv[1:] in _QUICK:
        from herdrecord.cli.manifest import quick_app

        quick_app()(prog_name="herdrecord")
        return
    from herdrecord.cli.manifest import modules_of_command

    # One command runs: only its module is imported (the others import what they need, from
    # LanceDB to torch). A name that is no command loads them all, for typer's own message.
    modules = modules_of_command(sys.argv[1:])
    if modules is None:
        load_app()(prog_name="herdrecord")
        return
    for module in modules:
        importlib.import_module(module)
    from herdrecord.cli.root import app

    app(prog_name="herdrecord")
