"""Rows a command returns, written as CSV, JSON lines or Parquet (`query`, `sql`)."""

from __future__ import annotations

import io
import json
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import typer

from herdrecord.errors import InvalidInput
from herdrecord.query.plainvalues import flat_for_csv, json_ready


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
