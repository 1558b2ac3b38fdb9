"""Questions about the herd: named cohort queries, free SQL (sandboxed), Parquet export."""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from herdrecord.api.auth import ANALYSTS, READERS, allow
from herdrecord.api.models import NamedQuery, QueryIn, QueryList, QueryParam, Rows, SqlIn
from herdrecord.api.problems import responses
from herdrecord.api.routes_animals import _record
from herdrecord.cli_rows import flat_for_csv, json_ready
from herdrecord.cohorts import get_query, list_queries, run_query
from herdrecord.export import ExportFilters, ExportOptions, export_parquet
from herdrecord.keys import Principal
from herdrecord.sqlsandbox import run_sql
from herdrecord.store import Record

router = APIRouter(tags=["analysis"])
Reader = Annotated[Principal, Depends(allow(*READERS))]
Analyst = Annotated[Principal, Depends(allow(*ANALYSTS))]
Format = Literal["json", "csv", "parquet"]
TABLE_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}


@router.get("/queries", summary="The named cohort queries", responses=responses())
def get_queries(request: Request, principal: Reader) -> QueryList:
    """Return every named query with what it answers and its parameters."""
    return QueryList(queries=[_described(q.name) for q in list_queries()])


@router.post(
    "/queries/{name}",
    summary="Run a named query",
    response_model=Rows,
    responses={200: {"content": TABLE_CONTENT, "description": "The rows."}, **responses(404)},
)
def post_query(
    request: Request,
    principal: Reader,
    name: str,
    body: QueryIn,
    format: Annotated[Format, Query(description="json (default), csv or parquet")] = "json",
) -> Rows | Response:
    """Run the query with the given parameters (text, checked against its header)."""
    started = time.monotonic()
    rows = run_query(_record(request), name, body.params)
    return _rows(rows, False, time.monotonic() - started, format, name)


@router.post(
    "/sql",
    summary="Run one read-only SELECT (analyst)",
    response_model=Rows,
    responses={200: {"content": TABLE_CONTENT, "description": "The rows."}, **responses()},
)
def post_sql(
    request: Request,
    principal: Analyst,
    body: SqlIn,
    format: Annotated[Format, Query(description="json (default), csv or parquet")] = "json",
) -> Rows | Response:
    """Run the statement over the record's views in a sandboxed process (no files, no
    extensions, time, memory and row limits); the views are those of `herdrecord sql`."""
    record = _record(request)
    result = run_sql(record.uri, body.sql, request.app.state.settings)
    return _rows(result.table, result.truncated, result.seconds, format, "sql")


@router.get(
    "/export",
    summary="Export as a zip of Parquet files (analyst)",
    response_class=Response,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "A zip (stored, not recompressed) of the export's Parquet files, "
            "manifest.json and data-dictionary.md; Content-Length is set.",
        },
        **responses(404),
    },
)
async def get_export(
    request: Request,
    principal: Analyst,
    start: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC day.")] = None,
    animal: Annotated[list[str] | None, Query(description="Only these animals.")] = None,
    cohort: Annotated[str | None, Query(description="Only this named query's animals.")] = None,
    observations: bool = False,
    keyframes: bool = False,
    embeddings: bool = False,
) -> Response:
    """Write the export (as `herdrecord export`) and stream it as one zip file."""
    filters = ExportFilters(
        first_day=start,
        last_day=end,
        animal_ids=tuple(animal) if animal is not None else None,
        cohort=cohort,
    )
    options = ExportOptions(observations=observations, keyframes=keyframes, embeddings=embeddings)
    record = _record(request)
    work = Path(tempfile.mkdtemp(prefix="herdrecord-export-"))
    try:
        archive = await asyncio.to_thread(_export_zip, record, work, filters, options)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    size = archive.stat().st_size
    return StreamingResponse(
        _chunks(archive),
        media_type="application/zip",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{archive.name}"',
        },
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


def _export_zip(record: Record, work: Path, filters: ExportFilters, options: ExportOptions) -> Path:
    result = export_parquet(record, work / "export", filters, options)
    archive = work / f"herdrecord-export-{record.farm_id}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as out:
        for path in sorted(result.out_dir.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(result.out_dir).as_posix())
    return archive


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def _described(name: str) -> NamedQuery:
    query = get_query(name)
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


def _rows(
    table: pa.Table, truncated: bool, seconds: float, fmt: Format, name: str
) -> Rows | Response:
    if fmt == "csv":
        buffer = io.BytesIO()
        pcsv.write_csv(flat_for_csv(table), buffer)
        return Response(buffer.getvalue(), media_type="text/csv", headers=_attachment(name, "csv"))
    if fmt == "parquet":
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return Response(
            buffer.getvalue(),
            media_type="application/vnd.apache.parquet",
            headers=_attachment(name, "parquet"),
        )
    return Rows(
        columns=table.column_names,
        rows=[[json_ready(v) for v in row.values()] for row in table.to_pylist()],
        row_count=table.num_rows,
        truncated=truncated,
        seconds=round(seconds, 4),
    )


def _attachment(name: str, suffix: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}.{suffix}"'}
