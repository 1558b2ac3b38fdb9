"""The one SQL string literal helper (Lance filters and DuckDB)."""

from __future__ import annotations


def sql_literal(text: str) -> str:
    """Return `text` as a quoted SQL string literal: 'it''s'."""
    return "'" + text.replace("'", "''") + "'"
