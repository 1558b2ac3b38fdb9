"""Free SQL (analysts): one read-only SELECT over the views, in the sandbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from herdrecord.api.deps import Analyst, CurrentRecord
from herdrecord.api.models import Rows, SqlIn
from herdrecord.api.problems import responses
from herdrecord.api.rows import TABLE_CONTENT, RowFormat, render_rows
from herdrecord.query.sandbox import Sandbox

router = APIRouter(tags=["sql"])


def current_sandbox(request: Request) -> Sandbox:
    """Return the service's sandbox: its warm processes and its limit of queries at once."""
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


@router.post(
    "/sql",
    summary="Run one read-only SELECT",
    response_model=Rows,
    responses={200: {"content": TABLE_CONTENT, "description": "The rows."}, **responses(429)},
)
def post_sql(
    principal: Analyst,
    record: CurrentRecord,
    sandbox: Annotated[Sandbox, Depends(current_sandbox)],
    body: SqlIn,
    format: Annotated[RowFormat, Query(description="json (default), csv or parquet")] = "json",
) -> Rows | Response:
    """Run the statement over the record's views in a sandboxed process (no files, no
    extensions; time, memory, row and byte limits); the views are those of `herdrecord sql`.
    At most HERDRECORD_SQL_MAX_CONCURRENT run at once: past them a query waits
    HERDRECORD_SQL_QUEUE_S, then is refused with 429 and Retry-After."""
    result = sandbox.run(record.uri, body.sql)
    return render_rows(result.table, result.truncated, result.seconds, format, "sql")
