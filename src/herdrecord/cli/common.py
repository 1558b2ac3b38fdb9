"""What every command shares: the app, its consoles, the RECORD argument, opening a record,
progress bars and sizes. (What the commands that take batches in share is `intake`.)"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from herdrecord.cli.root import app as app  # the commands register on it through here
from herdrecord.cli.root import console as console
from herdrecord.cli.root import errors as errors
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.store.record import Record, open_record

# A str, not a Path: a Path would fold s3://bucket/herd into s3:/bucket/herd.
RecordPath = Annotated[
    str,
    typer.Argument(help="The record: a directory, or s3://bucket/prefix.", show_default=False),
]
Animal = Annotated[str, typer.Argument(help="Animal id.", show_default=False)]


def parse_day(option: str, text: str | None) -> date | None:
    """Return the day an option gives (None when not given); one line for a bad one."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r}: expected a date as YYYY-MM-DD") from None


def env_settings() -> Settings:
    return Settings()


def open_from_cli(path: str | Path) -> Record:
    """Open the record at PATH with settings from the environment; say what a recovery
    after a power cut did, and what to re-send."""
    record = open_record(str(path), env_settings())
    if record.recovery is not None:
        errors.print(f"[yellow]{escape(record.recovery.describe())}[/]")
    return record


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    )


def human_bytes(size: int) -> str:
    """Return a size in decimal units (1 MB = 10^6 bytes, as `herdrecord budget` counts)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
