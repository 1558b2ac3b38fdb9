"""The root of the command line: the `herdrecord` Typer app and its consoles, light to
import (typer and rich only), so `herdrecord --help` and `--version` never load what the
commands need."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import typer.core
from rich.markup import escape

from herdrecord._version import __version__
from herdrecord.cli.console import CliConsole
from herdrecord.errors import HerdrecordError

HELP = "A longitudinal per-animal visual record database for livestock."

# Wrapped to a terminal's width; never wrapped or cut in a pipe, a file or a log.
console = CliConsole()
errors = CliConsole(stderr=True)


class _Commands(typer.core.TyperGroup):
    """Command group that turns herdrecord's errors into one readable line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except HerdrecordError as exc:
            errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"herdrecord {__version__}")
        raise typer.Exit()


def new_app() -> typer.Typer:
    """Return the top-level app with its options and no commands (each command module adds
    its own to `app`; the quick help adds stand-ins named by the manifest)."""
    made = typer.Typer(
        cls=_Commands,
        name="herdrecord",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},  # every command inherits -h
    )

    @made.callback()
    def _main(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                "-V",
                help="Print herdrecord's version and exit.",
                callback=_print_version,
                is_eager=True,
            ),
        ] = False,
    ) -> None:
        """A longitudinal per-animal visual record database for livestock."""

    return made


app = new_app()
