"""Values as plain data: JSON-ready Python values, and the one CSV writer (CLI, API, pages)."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

# A spreadsheet opening a CSV runs a cell that starts with one of these as a formula
# (=HYPERLINK(...), =cmd|' /C calc'!A0, +, -, @, and tab or CR that some strip first).
# OWASP's CSV-injection guidance: prefix such a text cell with ' so it shows as text.
_FORMULA_START = r"^[=+\-@\t\r]"
_FORMULA_CHARACTERS = pa.array(["=", "+", "-", "@", "\t", "\r"])
_SIGNS = pa.array(["+", "-"])
# A text that is only a number (-3.5, +1e3) is read as that number, never as a formula.
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def csv_bytes(rows: pa.Table) -> bytes:
    """Return the rows as CSV (a header, then one line per row), safe to open in a
    spreadsheet: text cells and names that would run as formulas start with '.

    Every CSV the project writes (`sql`, `query`, the API's ?format=csv, page downloads)
    comes from here. Numbers stay numbers: only text is ever prefixed.
    """
    flat = _flat_for_csv(rows)
    columns = [_inert(column) for column in flat.columns]
    names = [_inert_text(name) for name in flat.column_names]
    buffer = io.BytesIO()
    pcsv.write_csv(pa.table(columns, names=names), buffer)
    return buffer.getvalue()


def _inert(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not _is_text(column.type):
        return column
    # The CSV writer takes no string_view; large_string holds the same text.
    text = column.cast(pa.large_string()) if pa.types.is_string_view(column.type) else column
    if len(text) == 0:
        return text
    # The first character settles most cells (a tenth of a regex's time over a column);
    # only one starting with + or - also needs the number test.
    first = pc.utf8_slice_codeunits(text, 0, 1)
    risky = pc.is_in(first, value_set=_FORMULA_CHARACTERS)
    if not pc.any(risky).as_py():
        return text
    signed = pc.is_in(first, value_set=_SIGNS)
    if pc.any(signed).as_py():
        number = pc.and_(signed, pc.match_substring_regex(text, _PLAIN_NUMBER))
        risky = pc.and_(risky, pc.invert(number))
    quoted = pc.binary_join_element_wise(pa.scalar("'", text.type), text, pa.scalar("", text.type))
    return pc.if_else(risky, quoted, text)


def _inert_text(text: str) -> str:
    risky = re.match(_FORMULA_START, text) and not re.match(_PLAIN_NUMBER, text)
    return f"'{text}" if risky else text


def _is_text(type_: pa.DataType) -> bool:
    return any(
        check(type_)
        for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    )


def _flat_for_csv(rows: pa.Table) -> pa.Table:
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
