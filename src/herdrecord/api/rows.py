"""Rows a query returns, as JSON (columns and rows), CSV or Parquet."""

from __future__ import annotations

import io
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Response

from herdrecord.api.models import Rows
from herdrecord.query.plainvalues import csv_bytes, json_ready

RowFormat = Literal["json", "csv", "parquet"]
TABLE_CONTENT: dict[str, Any] = {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}


def render_rows(
    table: pa.Table, truncated: bool, seconds: float, fmt: RowFormat, name: str
) -> Rows | Response:
    """Return the rows in the asked format (CSV and Parquet as a download named `name`)."""
    if fmt == "csv":
        return Response(csv_bytes(table), media_type="text/csv", headers=_download(name, "csv"))
    if fmt == "parquet":
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return Response(
            buffer.getvalue(),
            media_type="application/vnd.apache.parquet",
            headers=_download(name, "parquet"),
        )
    return Rows(
        columns=table.column_names,
        rows=[[json_ready(v) for v in row.values()] for row in table.to_pylist()],
        row_count=table.num_rows,
        truncated=truncated,
        seconds=round(seconds, 4),
    )


def _download(name: str, suffix: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}.{suffix}"'}
