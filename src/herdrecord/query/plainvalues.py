"""Values as plain data: JSON-ready Python values, and tables CSV can hold (CLI and API)."""

from __future__ import annotations

import base64
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa


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
