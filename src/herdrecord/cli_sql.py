"""The `sql` command: one read-only SELECT over the record's views, in a sandbox."""

from __future__ import annotations

import base64
import io
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import typer
from rich.markup import escape
from rich.table import Table

from herdrecord.cli import RecordPath, app, console, errors
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.sqlsandbox import SqlResult, run_sql

# A terminal table past this many rows helps nobody; --format csv or json gives them all.
SHOWN_ROWS = 50


class SqlFormat(StrEnum):
    """How `herdrecord sql` writes its rows."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@app.command(name="sql")
def sql_command(
    path: RecordPath,
    query: Annotated[
        str,
        typer.Argument(
            help="One SELECT over the record's views (animals, tracklets, links, "
            "observations, days, events, events_history, keyframes, batches, pool).",
            show_default=False,
        ),
    ],
    output_format: Annotated[
        SqlFormat,
        typer.Option(
            "--format",
            help="table (the first rows, on the terminal), csv, json (one object per line) or "
            "parquet (needs --out).",
        ),
    ] = SqlFormat.table,
    out: Annotated[
        Path | None,
        typer.Option(help="File to write the rows to (csv, json, parquet) instead of stdout."),
    ] = None,
) -> None:
    """Run one read-only SELECT over the record's views, sandboxed: no files, URLs or
    extensions; time, memory and rows limited by HERDRECORD_SQL_* settings."""
    if output_format is SqlFormat.parquet and out is None:
        raise InvalidInput("--format parquet writes a file: give it with --out FILE")
    if output_format is SqlFormat.table and out is not None:
        raise InvalidInput("--out needs --format csv, json or parquet")
    settings = Settings()
    result = run_sql(path, query, settings)
    if output_format is SqlFormat.table:
        console.print(_rich_table(result.table))
    else:
        _write(result.table, output_format, out)
    # The notes go to stderr when rows go to stdout, so that stdout stays pure CSV or JSON.
    notes = console if output_format is SqlFormat.table or out is not None else errors
    notes.print(_summary(result, output_format, out), highlight=False)
    if result.truncated:
        notes.print(
            f"[yellow]note:[/] the result was cut at {settings.sql_max_rows:,} rows "
            "(HERDRECORD_SQL_MAX_ROWS); add a LIMIT or an aggregate, or raise the setting",
            highlight=False,
        )


def _summary(result: SqlResult, output_format: SqlFormat, out: Path | None) -> str:
    rows = result.table.num_rows
    text = f"{rows:,} row{'s' if rows != 1 else ''} in {result.seconds:.2f} s"
    if out is not None:
        return f"{text}, written to {escape(str(out))}"
    if output_format is SqlFormat.table and rows > SHOWN_ROWS:
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


def _write(rows: pa.Table, output_format: SqlFormat, out: Path | None) -> None:
    if output_format is SqlFormat.parquet:
        assert out is not None
        pq.write_table(rows, out)
        return
    if output_format is SqlFormat.csv:
        buffer = io.BytesIO()
        pcsv.write_csv(_flat(rows), buffer)
        text = buffer.getvalue().decode()
    else:
        text = "".join(
            json.dumps(_json_ready(row), ensure_ascii=False) + "\n" for row in rows.to_pylist()
        )
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


def _flat(rows: pa.Table) -> pa.Table:
    """Return the rows with what CSV cannot hold as text: nested values (lists, structs, maps)
    as JSON, bytes as base64, intervals and other types as Python writes them."""
    columns = []
    for column in rows.columns:
        if not _csv_writable(column.type):
            texts = [None if v is None else _csv_text(v) for v in column.to_pylist()]
            column = pa.chunked_array([pa.array(texts, pa.string())])
        columns.append(column)
    return pa.table(columns, names=rows.column_names)


def _csv_writable(type_: pa.DataType) -> bool:
    return not isinstance(type_, pa.ExtensionType) and any(
        check(type_)
        for check in (
            pa.types.is_null,
            pa.types.is_boolean,
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_decimal,
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_string_view,
            pa.types.is_date,
            pa.types.is_time,
            pa.types.is_timestamp,
        )
    )


def _csv_text(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(_json_ready(value), ensure_ascii=False)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _json_ready(value: Any) -> Any:
    """Return the value with what JSON lacks (times, bytes, decimals, NaN) made plain."""
    if isinstance(value, pa.MonthDayNano):  # an interval
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
