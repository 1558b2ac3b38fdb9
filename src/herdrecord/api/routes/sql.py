"""Free SQL (analysts): one read-only SELECT over the views, in the sandbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from herdrecord.api.deps import Analyst, CurrentRecord, CurrentSettings
from herdrecord.api.models import Rows, SqlIn
from herdrecord.api.problems import responses
from herdrecord.api.rows import TABLE_CONTENT, RowFormat, render_rows
from herdrecord.query.sandbox import run_sql

router = APIRouter(tags=["sql"])


@router.post(
    "/sql",
    summary="Run one read-only SELECT",
    response_model=Rows,
    responses={200: {"content": TABLE_CONTENT, "description": "The rows."}, **responses()},
)
def post_sql(
    principal: Analyst,
    record: CurrentRecord,
    settings: CurrentSettings,
    body: SqlIn,
    format: Annotated[RowFormat, Query(description="json (default), csv or parquet")] = "json",
) -> Rows | Response:
    """Run the statement over the record's views in a sandboxed process (no files, no
    extensions; time, memory and row limits); the views are those of `herdrecord sql`."""
    result = run_sql(record.uri, body.sql, settings)
    return render_rows(result.table, result.truncated, result.seconds, format, "sql")
