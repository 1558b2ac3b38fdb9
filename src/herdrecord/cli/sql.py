"""The `sql` command: one read-only SELECT over the record's views, in a sandbox."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich.markup import escape
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, errors
from herdrecord.cli.rows import RowFormat, check_output, write_rows
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.query.sandbox import SqlResult, run_sql

# A terminal table past this many rows helps nobody; --format csv or json gives them all.
SHOWN_ROWS = 50


@app.command(name="sql")
def sql_command(
    path: RecordPath,
    query: Annotated[
        str,
        typer.Argument(
            help="One SELECT over the record's views (animals, tracklets, links, "
            "observations, days, events, events_history, keyframes, batches, pool); - reads "
            "it from standard input.",
            show_default=False,
        ),
    ],
    output_format: Annotated[
        RowFormat,
        typer.Option(
            "--format",
            help="table (the first rows, on the terminal), csv, json (one array), jsonl (one "
            "object per line) or parquet (needs --out).",
        ),
    ] = RowFormat.table,
    out: Annotated[
        Path | None,
        typer.Option(
            help="File to write the rows to (csv, json, jsonl, parquet) instead of stdout."
        ),
    ] = None,
) -> None:
    """Run one read-only SELECT over the record's views, sandboxed: no files, URLs or
    extensions; time, memory and rows limited by HERDRECORD_SQL_* settings."""
    check_output(output_format, out)
    settings = Settings()
    if query == "-":
        query = sys.stdin.read(settings.api_max_small_body_bytes + 1)
        if len(query) > settings.api_max_small_body_bytes:
            raise InvalidInput(
                f"the statement on standard input is over {settings.api_max_small_body_bytes:,} "
                "bytes (HERDRECORD_API_MAX_SMALL_BODY_BYTES)"
            )
    show_sql_result(run_sql(path, query, settings), output_format, out, settings)


def show_sql_result(
    result: SqlResult, output_format: RowFormat, out: Path | None, settings: Settings
) -> None:
    """Print or write a query's rows, then its summary and any notice of a cut."""
    if output_format is RowFormat.table:
        console.print(_rich_table(result.table))
    else:
        write_rows(result.table, output_format, out)
    # The notes go to stderr when rows go to stdout, so that stdout stays pure CSV or JSON.
    notes = console if output_format is RowFormat.table or out is not None else errors
    notes.print(_summary(result, output_format, out), highlight=False)
    if result.truncated:
        notes.print(
            f"[yellow]note:[/] the result was cut at {settings.sql_max_rows:,} rows "
            "(HERDRECORD_SQL_MAX_ROWS); add a LIMIT or an aggregate, or raise the setting",
            highlight=False,
        )


def _summary(result: SqlResult, output_format: RowFormat, out: Path | None) -> str:
    rows = result.table.num_rows
    text = f"{rows:,} row{'s' if rows != 1 else ''} in {result.seconds:.2f} s"
    if out is not None:
        return f"{text}, written to {escape(str(out))}"
    if output_format is RowFormat.table and rows > SHOWN_ROWS:
        return f"{text}; the first {SHOWN_ROWS} shown (--format csv or json for all)"
    return text


def _rich_table(rows: pa.Table) -> Table:
    table = Table(show_lines=False)
    for field in rows.schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        table.add_column(escape(field.name), justify="right" if numeric else "left")
    for row in rows.slice(0, SHOWN_ROWS).to_pylist():
        table.add_row(*(_cell(value) for value in row.values()))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]null[/]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(str(value))
