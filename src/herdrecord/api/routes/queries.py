"""Named cohort queries: list them with their parameters, run one."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from herdrecord.api.deps import CurrentRecord, Reader
from herdrecord.api.models import NamedQuery, QueryIn, QueryList, QueryParam, QueryValue, Rows
from herdrecord.api.problems import responses
from herdrecord.api.rows import TABLE_CONTENT, RowFormat, render_rows
from herdrecord.query.cohorts import NamedQuery as LibraryQuery
from herdrecord.query.cohorts import list_queries, run_query
from herdrecord.query.plainvalues import json_ready

router = APIRouter(tags=["queries"])


@router.get("/queries", summary="The named cohort queries", responses=responses())
def get_queries(principal: Reader) -> QueryList:
    """Return every named query with what it answers and its parameters."""
    return QueryList(queries=[_described(q) for q in list_queries()])


@router.post(
    "/queries/{name}",
    summary="Run a named query",
    response_model=Rows,
    responses={200: {"content": TABLE_CONTENT, "description": "The rows."}, **responses(404)},
)
def post_query(
    principal: Reader,
    record: CurrentRecord,
    name: str,
    body: Annotated[QueryIn | None, Body()] = None,
    format: Annotated[RowFormat, Query(description="json (default), csv or parquet")] = "json",
) -> Rows | Response:
    """Run the query with the given parameters (JSON numbers, booleans or text, checked
    against its header); with no body, every parameter takes its default."""
    started = time.monotonic()
    given = {} if body is None else body.params
    rows = run_query(record, name, {k: _as_text(v) for k, v in given.items() if v is not None})
    return render_rows(rows, False, time.monotonic() - started, format, name)


def _as_text(value: QueryValue) -> str:
    """Return a JSON parameter value as the text a command line would give."""
    if isinstance(value, bool):  # before int: a bool is one
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 2.0 is the whole number 2, as JSON does not tell them apart
    return str(value)


def _described(query: LibraryQuery) -> NamedQuery:
    return NamedQuery(
        name=query.name,
        description=query.description,
        params=[
            QueryParam(
                name=p.name,
                type=str(p.type),
                meaning=p.meaning,
                required=p.required,
                default=json_ready(p.default),
                low=p.low,
                high=p.high,
                choices=list(p.choices),
            )
            for p in query.params
        ],
    )
