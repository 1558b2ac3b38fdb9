"""Uploads from the edge: `POST /v1/batches` (JSON, gzip JSON or bulk Parquet) and linking."""

from __future__ import annotations

import asyncio
import io
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request, Response

from herdrecord.api.deps import CurrentSettings, CurrentWriter, Edge
from herdrecord.api.models import BatchResult, LinkResult, UploadResult
from herdrecord.api.problems import ApiError, responses
from herdrecord.bulk import read_bulk
from herdrecord.contract import edge_batch_json_schema
from herdrecord.ingest import BatchOutcome
from herdrecord.intake import GZIP_MAGIC, PARQUET_MAGIC, Candidate, read_bytes

router = APIRouter(tags=["edge"])

JSON_TYPES = ("application/json",)
GZIP_TYPES = ("application/gzip", "application/x-gzip")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
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
    # Parsing and checking a batch takes CPU time: off the event loop, so reads go on.
    candidates = await asyncio.to_thread(
        _candidates,
        request.headers.get("content-type", ""),
        request.headers.get("content-encoding", ""),
        body,
        settings.max_batch_bytes,
        principal.name,
    )
    outcomes = await writer.upload(candidates)
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


def _candidates(
    content_type: str, content_encoding: str, body: bytes, max_batch_bytes: int, who: str
) -> list[Candidate]:
    kind = content_type.split(";")[0].strip().lower()
    known = ("", "application/octet-stream", *JSON_TYPES, *GZIP_TYPES, *PARQUET_TYPES)
    if kind not in known:
        raise ApiError(
            415,
            f"cannot read a body of type {kind!r}; send application/json, application/gzip "
            "or application/vnd.apache.parquet",
        )
    source = f"upload by {who}"
    if not body:
        raise ApiError(
            422, "the body is empty; send one batch", "batch_rejected", ["batch: the body is empty"]
        )
    if body[:4] == PARQUET_MAGIC:
        with tempfile.TemporaryDirectory(prefix="herdrecord-upload-") as tmp:
            path = Path(tmp) / "upload.parquet"
            path.write_bytes(body)
            return [Candidate(source, b.batch_id, b.frames, b.problems) for b in read_bulk(path)]
    if kind in PARQUET_TYPES:
        raise ApiError(
            422,
            "the body is not a Parquet file",
            "batch_rejected",
            ["file: not a Parquet file (it does not start with PAR1)"],
        )
    gzipped = content_encoding.strip().lower() == "gzip" or kind in GZIP_TYPES
    if gzipped and body[:2] != GZIP_MAGIC:
        raise ApiError(
            422, "the body is not gzip", "batch_rejected", ["file: not valid gzip (no gzip header)"]
        )
    return [read_bytes(io.BytesIO(body), source, max_batch_bytes)]


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
