"""The commands' names and help, kept beside the code in `commands.json`, so that
`herdrecord --help` lists them without importing any command (each imports LanceDB, DuckDB
or torch on the way). `make schemas` (`herdrecord.cli.write_command_manifest`) writes the file
from the real commands; a test fails when it is stale."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import typer

from herdrecord.cli.root import new_app

MANIFEST = "commands.json"


def read_manifest() -> list[dict[str, Any]]:
    """Return the manifest's commands, in the order `herdrecord --help` lists them."""
    text = (resources.files("herdrecord.cli") / MANIFEST).read_text()
    commands: list[dict[str, Any]] = json.loads(text)
    return commands


def quick_app() -> typer.Typer:
    """Return the top-level app with a stand-in for each command of the manifest: enough to
    print the top-level help exactly as the real app does."""
    quick = new_app()
    for command in read_manifest():
        quick.command(command["name"], help=command["help"], short_help=command["short_help"])(
            _stand_in
        )
    return quick


def _stand_in() -> None:
    """Never run: `main` loads the real commands before it runs any."""


def manifest_of(app: typer.Typer) -> list[dict[str, Any]]:
    """Return the manifest of an app with every command registered."""
    group = typer.main.get_command(app)
    context = typer.Context(group)
    commands = []
    for name in group.list_commands(context):  # type: ignore[attr-defined]
        command = group.get_command(context, name)  # type: ignore[attr-defined]
        commands.append(
            {
                "name": name,
                "help": command.help,
                "short_help": command.short_help,
                "module": _module_of(command),
            }
        )
    return commands


def module_of_command(name: str) -> str | None:
    """Return the command module (`herdrecord.cli.x`) whose import registers a top-level
    command, from the manifest; None for a name that is no command."""
    for command in read_manifest():
        if command["name"] == name:
            module = command.get("module")
            return str(module) if module else None
    return None


def _module_of(command: Any) -> str | None:
    """Return the module that defines a command (a group's: that of its first command)."""
    callback = getattr(command, "callback", None)
    if callback is not None and getattr(callback, "__module__", "").startswith("herdrecord.cli."):
        return str(callback.__module__)
    if hasattr(command, "list_commands"):
        context = typer.Context(command)
        for name in command.list_commands(context):
            found = _module_of(command.get_command(context, name))
            if found:
                return found
    return None


def write_manifest(app: typer.Typer) -> Path:
    """Write `commands.json` from an app with every command; return its path."""
    path = Path(__file__).with_name(MANIFEST)
    path.write_text(json.dumps(manifest_of(app), indent=1) + "\n")
    return path
