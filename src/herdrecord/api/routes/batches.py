"""Uploads from the edge: `POST /v1/batches` (JSON, gzip JSON or bulk Parquet) and linking."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from herdrecord.api.deps import CurrentSettings, CurrentWriter, Edge
from herdrecord.api.models import BatchResult, LinkResult, UploadResult
from herdrecord.api.problems import ApiError, responses
from herdrecord.contract.limits import BulkLimits
from herdrecord.contract.models import edge_batch_json_schema
from herdrecord.ingest.group_commit import GZIP_TYPES, PARQUET_TYPES, UploadRefused, parse_upload
from herdrecord.ingest.ingestor import BatchOutcome
from herdrecord.ingest.journal import Received

router = APIRouter(tags=["edge"])

BINARY = {"type": "string", "format": "binary"}


@router.post(
    "/batches",
    summary="Upload an edge batch (JSON, gzip JSON, or a bulk Parquet file)",
    status_code=201,
    responses={
        200: {"model": UploadResult, "description": "Every batch was already stored."},
        201: {"model": UploadResult, "description": "Stored; each batch's outcome."},
        **responses(413, 415),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "One batch as JSON (the edge batch contract; gzip it with "
            "`Content-Encoding: gzip` or send `application/gzip`), or a bulk Parquet file of "
            "one or more batches. An upload is stored whole or not at all.",
            "content": {
                "application/json": {"schema": edge_batch_json_schema()},
                **{kind: {"schema": BINARY} for kind in (*GZIP_TYPES, *PARQUET_TYPES)},
            },
        }
    },
)
async def upload_batch(
    principal: Edge,
    request: Request,
    response: Response,
    settings: CurrentSettings,
    writer: CurrentWriter,
) -> UploadResult:
    """Store the upload's batches through the writer: 201 when stored, 200 when every batch
    was already stored (a re-send), 422 with every problem when any batch is invalid (then
    nothing of the upload is stored)."""
    body = await read_body(request, settings.api_max_body_bytes)
    # Parsing and checking takes CPU time: on a thread, so the event loop goes on meanwhile.
    # (Worker processes were tried: moving the frames back costs more than the GIL does.)
    received = Received(
        f"upload by {principal.name}",
        request.headers.get("content-type", ""),
        request.headers.get("content-encoding", ""),
        body,
    )
    parsed = await asyncio.to_thread(
        parse_upload,
        received.content_type,
        received.content_encoding,
        body,
        settings.max_batch_bytes,
        received.source,
        BulkLimits.from_settings(settings),
    )
    if isinstance(parsed, UploadRefused):
        code = "batch_rejected" if parsed.status == 422 else None
        raise ApiError(parsed.status, parsed.message, code, parsed.problems)
    foreign = sorted(
        {
            c.frames.header.device_id
            for c in parsed
            if c.frames is not None and not principal.may_write_for(c.frames.header.device_id)
        }
    )
    if foreign:
        raise ApiError(
            403,
            f"{principal.name} uploads only for {', '.join(principal.devices)}; the upload "
            f"has batches of {', '.join(foreign)}, nothing stored",
            "wrong_device",
        )
    # Acknowledged only after the writer has journalled the bytes (fsynced) and committed.
    outcomes = await writer.upload(parsed, received)
    results = [_result(outcome) for outcome in outcomes]
    if any(r.status == "rejected" for r in results):
        problems = [
            f"{r.batch_id or 'batch'}: {p}"
            for r in results
            if r.status == "rejected"
            for p in r.problems
        ]
        raise ApiError(422, _rejected_message(results), "batch_rejected", problems)
    created = any(r.status == "accepted" for r in results)
    response.status_code = 201 if created else 200
    return UploadResult(status="accepted" if created else "duplicate", batches=results)


@router.post(
    "/link",
    summary="Link every unlinked tracklet now",
    responses=responses(),
)
async def link_now(principal: Edge, writer: CurrentWriter) -> LinkResult:
    """Run linking now instead of waiting for the uploads to pause (the service links by
    itself `HERDRECORD_API_LINK_IDLE_S` after the last upload)."""
    report = await writer.link_now()
    return LinkResult(
        pen_days=report.pen_days,
        tracklets=report.tracklets,
        linked=report.linked,
        unknown=report.unknown,
        enrolled=list(report.enrolled),
        seconds=round(report.seconds, 3),
    )


async def read_body(request: Request, limit: int) -> bytes:
    """Return the request body, refusing with 413 once it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the body is larger than the limit of {limit} bytes (HERDRECORD_API_MAX_BODY_BYTES); "
        "split it into smaller batches",
    )


def _result(outcome: BatchOutcome) -> BatchResult:
    return BatchResult(
        batch_id=outcome.batch_id,
        status=outcome.status,
        rows=outcome.rows,
        problems=list(outcome.problems),
    )


def _rejected_message(results: list[BatchResult]) -> str:
    rejected = [r for r in results if r.status == "rejected"]
    first = rejected[0]
    label = first.batch_id or "the batch"
    if len(results) == 1:
        shown = first.problems[0] if first.problems else "invalid"
        more = f" (and {len(first.problems) - 1} more problems)" if len(first.problems) > 1 else ""
        return f"{label} rejected, nothing stored: {shown}{more}"
    return f"{len(rejected)} of {len(results)} batches rejected; nothing of the upload was stored"
