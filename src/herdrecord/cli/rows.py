"""Rows a command prints: as a table for people, or as CSV, JSON, JSON lines or Parquet.

`query` and `sql` take RowFormat (Parquet too, into a file); every listing (`animals`,
`review list`, `history`, `info`, `budget`, `days`, `keys list`, `journal`, `farm`,
`fleet farms`, `fleet lying-before-lameness`, `cameras list`, `timeline`) takes `--format
table|csv|json|jsonl`, the sqlite-utils convention: json is one array, jsonl one object per
line. Machine formats write every value whole, to stdout alone; what a listing says besides
its rows goes to stderr then.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.table import Table

from herdrecord.cli.common import console, errors
from herdrecord.cli.console import CliConsole
from herdrecord.errors import InvalidInput
from herdrecord.query.plainvalues import csv_bytes, json_ready


class RowFormat(StrEnum):
    """How `query` and `sql` write their rows."""

    table = "table"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"


class ListFormat(StrEnum):
    """How a listing command writes its rows."""

    table = "table"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"


ListFormatOption = Annotated[
    ListFormat,
    typer.Option(
        "--format",
        help="table (for people), csv, json (one array) or jsonl (one object per line); "
        "csv, json and jsonl write every value whole, for scripts.",
    ),
]


def check_output(output_format: RowFormat, out: Path | None) -> None:
    """Refuse a format and output file that do not go together."""
    if output_format is RowFormat.parquet and out is None:
        raise InvalidInput("--format parquet writes a file: give it with --out FILE")
    if output_format is RowFormat.table and out is not None:
        raise InvalidInput("--out needs --format csv, json, jsonl or parquet")


def write_rows(rows: pa.Table, output_format: RowFormat, out: Path | None) -> None:
    """Write rows as CSV, JSON, JSON lines (to `out` or stdout) or Parquet (to `out`)."""
    if output_format is RowFormat.parquet:
        assert out is not None
        pq.write_table(rows, out)
        return
    if output_format is RowFormat.csv:
        text = csv_bytes(rows).decode()
    else:
        text = _json_text(rows.to_pylist(), lines=output_format is RowFormat.jsonl)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


def _json_text(rows: list[dict[str, Any]], lines: bool) -> str:
    objects = [json.dumps(json_ready(row), ensure_ascii=False) for row in rows]
    if lines:
        return "".join(f"{o}\n" for o in objects)
    return "[\n" + ",\n".join(objects) + "\n]\n" if objects else "[]\n"


class ListingTable(Table):
    """A listing's table for a terminal: a value too wide for its column folds onto more
    lines, never ends in an ellipsis (a person copies ids and names from it)."""

    def add_column(self, header: Any = "", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(header, *args, **kwargs)


def add_id_column(table: Table, header: str) -> None:
    """Add a column for ids a person copies into the next command (a tracklet, a key id):
    on a narrow terminal the other columns fold first, and an id too long even then folds
    onto a second line."""
    table.add_column(header, no_wrap=True, overflow="fold")


def listing_rows(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Return a listing's rows as a table with exactly these columns (also when empty)."""
    if not rows:
        return pa.table({name: pa.array([], pa.null()) for name in columns})
    return pa.Table.from_pylist([{name: row[name] for name in columns} for row in rows])


def print_listing(
    rows: pa.Table, output_format: ListFormat, show: Callable[[], None], note: str = ""
) -> None:
    """Print a listing and what it says besides: as a table, `show()` draws it and the note
    follows on stdout; otherwise `rows` go to stdout whole and the note to stderr."""
    if output_format is ListFormat.table:
        show()
    else:
        write_rows(rows, RowFormat(output_format.value), None)
    if note:
        notes_console(output_format).print(note, highlight=False)


def notes_console(output_format: ListFormat) -> CliConsole:
    """Return where a listing's words go: stdout beside a table, else stderr (stdout then
    holds only the rows)."""
    return console if output_format is ListFormat.table else errors
