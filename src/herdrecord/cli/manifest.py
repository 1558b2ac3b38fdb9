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
                "modules": _modules_of(command),
                "subcommands": _subcommand_modules(command),
            }
        )
    return commands


def modules_of_command(argv: list[str]) -> list[str] | None:
    """Return the command modules (`herdrecord.cli.x`) to import to run `argv` (the words
    after `herdrecord`), from the manifest: a command's own, or for a group's subcommand that
    subcommand's (`review list` needs none of the answers' linking); None for no command."""
    if not argv:
        return None
    for command in read_manifest():
        if command["name"] == argv[0]:
            sub = command.get("subcommands", {}).get(argv[1]) if len(argv) > 1 else None
            modules = [sub] if sub else command.get("modules", [])
            return [str(m) for m in modules] or None
    return None


def _modules_of(command: Any) -> list[str]:
    """Return the modules that define a command (for a group: all of its subcommands')."""
    callback = getattr(command, "callback", None)
    if callback is not None and getattr(callback, "__module__", "").startswith("herdrecord.cli."):
        return [str(callback.__module__)]
    found: list[str] = []
    if hasattr(command, "list_commands"):
        context = typer.Context(command)
        for name in command.list_commands(context):
            for module in _modules_of(command.get_command(context, name)):
                if module not in found:
                    found.append(module)
    return found


def _subcommand_modules(command: Any) -> dict[str, str]:
    """Return a group's subcommands and the one module each needs (none for a command)."""
    if not hasattr(command, "list_commands"):
        return {}
    context = typer.Context(command)
    out = {}
    for name in command.list_commands(context):
        modules = _modules_of(command.get_command(context, name))
        if len(modules) == 1:
            out[name] = modules[0]
    return out


def write_manifest(app: typer.Typer) -> Path:
    """Write `commands.json` from an app with every command; return its path."""
    path = Path(__file__).with_name(MANIFEST)
    path.write_text(json.dumps(manifest_of(app), indent=1) + "\n")
    return path
