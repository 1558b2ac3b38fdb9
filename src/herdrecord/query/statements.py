"""The statement check of free SQL: exactly one SELECT (or an EXPLAIN of one), named in the
words a person would use when it is not; and DuckDB's errors as one line."""

from __future__ import annotations

import re
from typing import Any

import duckdb

from herdrecord.errors import SqlFailed, SqlRejected

_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_EXPLAIN = re.compile(r"EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?(.*)$", re.DOTALL | re.I)


def check_statement(sql: str) -> None:
    """Accept exactly one SELECT (or EXPLAIN of one); raise SqlRejected or SqlFailed otherwise."""
    statements = _parse(sql)
    if not statements:
        raise SqlRejected('no SQL statement given — pass one SELECT, e.g. "SELECT * FROM animals"')
    if len(statements) > 1:
        labels = ", ".join(_label(s) for s in statements)
        raise SqlRejected(
            f"only one SELECT statement is allowed; got {len(statements)} statements ({labels})"
        )
    statement = statements[0]
    if statement.type == duckdb.StatementType.SELECT:
        return
    if statement.type == duckdb.StatementType.EXPLAIN:
        explained = _EXPLAIN.match(_strip_comments(statement.query))
        inner = _parse(explained.group(1)) if explained else []
        if len(inner) == 1 and inner[0].type == duckdb.StatementType.SELECT:
            return
        what = _label(inner[0]) if len(inner) == 1 else "something else"
        raise SqlRejected(f"only one SELECT statement is allowed; got EXPLAIN of {what}")
    raise SqlRejected(f"only one SELECT statement is allowed; got {_label(statement)}")


def _parse(sql: str) -> list[Any]:
    try:
        return list(duckdb.extract_statements(sql))
    except duckdb.Error as exc:
        raise SqlFailed(one_line(str(exc))) from None


def _strip_comments(text: str) -> str:
    found = _COMMENTS.match(text)
    return text[found.end() :] if found else text


def _label(statement: Any) -> str:
    """Return how a person would name the statement: its first keyword (INSTALL, USE,
    CHECKPOINT), or its type where the keyword says nothing (WITH ... INSERT)."""
    word = re.match(r"[A-Za-z_]*", _strip_comments(statement.query))
    keyword = word.group(0).upper() if word else ""
    if keyword in ("", "WITH", "FROM", "VALUES"):
        return str(statement.type.name).replace("_", " ")
    return keyword


def one_line(message: str) -> str:
    """Return DuckDB's error message as one line: its first line and its suggestions."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "the query failed"
    hints = [line for line in lines[1:] if line.startswith(("Candidate bindings", "Did you mean"))]
    return "; ".join([lines[0], *hints])
