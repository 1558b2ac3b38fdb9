"""Export (analysts): the Parquet export as one zip, streamed with its size."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from herdrecord.api.deps import Analyst, CurrentRecord
from herdrecord.api.problems import responses
from herdrecord.errors import InvalidInput
from herdrecord.query.export import ExportFilters, ExportOptions, export_zip
from herdrecord.query.icar_export import export_icar_ade_zip

router = APIRouter(tags=["export"])
CHUNK_BYTES = 1 << 20


@router.get(
    "/export",
    summary="Export as a zip of Parquet files",
    response_class=Response,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "A zip (stored, not recompressed) of the export's Parquet files, "
            "manifest.json and data-dictionary.md; with format=icar-ade, a zip of ICAR ADE "
            "collection files (docs/icar-ade.md). Content-Length is set.",
        },
        **responses(404),
    },
)
async def get_export(
    principal: Analyst,
    record: CurrentRecord,
    start: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC day.")] = None,
    animal: Annotated[list[str] | None, Query(description="Only these animals.")] = None,
    cohort: Annotated[str | None, Query(description="Only this named query's animals.")] = None,
    observations: bool = False,
    keyframes: bool = False,
    embeddings: bool = False,
    export_format: Annotated[
        Literal["parquet", "icar-ade"],
        Query(
            alias="format",
            description="parquet: the tables; icar-ade: the events in force, attention events "
            "and gait scores as ICAR ADE collections.",
        ),
    ] = "parquet",
) -> Response:
    """Write the export (as `herdrecord export`) and stream it as one zip file."""
    filters = ExportFilters(
        first_day=start,
        last_day=end,
        animal_ids=tuple(animal) if animal is not None else None,
        cohort=cohort,
    )
    options = ExportOptions(observations=observations, keyframes=keyframes, embeddings=embeddings)
    if export_format == "icar-ade" and options != ExportOptions():
        raise InvalidInput("observations, keyframes and embeddings are for the Parquet export")
    work = Path(tempfile.mkdtemp(prefix="herdrecord-export-"))
    try:
        if export_format == "icar-ade":
            archive = await asyncio.to_thread(export_icar_ade_zip, record, work, filters)
        else:
            archive = await asyncio.to_thread(export_zip, record, work, filters, options)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return StreamingResponse(
        _chunks(archive),
        media_type="application/zip",
        headers={
            "Content-Length": str(archive.stat().st_size),
            "Content-Disposition": f'attachment; filename="{archive.name}"',
        },
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
