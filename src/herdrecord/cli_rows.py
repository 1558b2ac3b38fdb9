"""Rows a command returns, written as CSV, JSON lines or Parquet (`query`, `sql`)."""

from __future__ import annotations

import base64
import io
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import typer

from herdrecord.errors import InvalidInput


class RowFormat(StrEnum):
    """How a command writes its rows."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def check_output(output_format: RowFormat, out: Path | None) -> None:
    """Refuse a format and output file that do not go together."""
    if output_format is RowFormat.parquet and out is None:
        raise InvalidInput("--format parquet writes a file: give it with --out FILE")
    if output_format is RowFormat.table and out is not None:
        raise InvalidInput("--out needs --format csv, json or parquet")


def write_rows(rows: pa.Table, output_format: RowFormat, out: Path | None) -> None:
    """Write rows as CSV, JSON lines (to `out` or stdout) or Parquet (to `out`)."""
    if output_format is RowFormat.parquet:
        assert out is not None
        pq.write_table(rows, out)
        return
    if output_format is RowFormat.csv:
        buffer = io.BytesIO()
        pcsv.write_csv(flat_for_csv(rows), buffer)
        text = buffer.getvalue().decode()
    else:
        text = "".join(
            json.dumps(json_ready(row), ensure_ascii=False) + "\n" for row in rows.to_pylist()
        )
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


def flat_for_csv(rows: pa.Table) -> pa.Table:
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
        return json.dumps(json_ready(value), ensure_ascii=False)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def json_ready(value: Any) -> Any:
    """Return the value with what JSON lacks (times, bytes, decimals, NaN) made plain."""
    if isinstance(value, pa.MonthDayNano):  # an interval
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
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
