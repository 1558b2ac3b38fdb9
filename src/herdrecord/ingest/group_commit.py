"""Uploads: read one body into batches, and commit uploads together, each whole or not at all.

An upload is what one client sent in one request (one JSON batch, or a Parquet file of many).
The service commits the uploads that queued up behind each other in one group, and the
intake journal replays journalled uploads the same way. `parse_upload` returns a refusal
instead of raising: which HTTP status a refusal gets is the adapter's decision.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from herdrecord.contract.limits import BulkLimits, shortened
from herdrecord.contract.parquet import read_bulk
from herdrecord.ingest.ingestor import BatchOutcome, Ingestor
from herdrecord.ingest.sources import GZIP_MAGIC, PARQUET_MAGIC, Candidate, read_bytes
from herdrecord.store.compaction import compact_if_fragmented
from herdrecord.store.record import Record

JSON_TYPES = ("application/json",)
GZIP_TYPES = ("application/gzip", "application/x-gzip")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
KNOWN_TYPES = ("", "application/octet-stream", *JSON_TYPES, *GZIP_TYPES, *PARQUET_TYPES)

WITHDRAWN = (
    "not stored: another batch of the same upload was rejected, and an upload is stored "
    "whole or not at all"
)


@dataclass(frozen=True)
class UploadRefused:
    """Why a body cannot be read at all (415 or 422), before any batch is looked at."""

    status: int
    message: str
    problems: list[str] = field(default_factory=list)


def parse_upload(
    content_type: str,
    content_encoding: str,
    body: bytes,
    max_batch_bytes: int,
    source: str,
    bulk: BulkLimits,
) -> list[Candidate] | UploadRefused:
    """Return the batches of the body (each checked by the contract), or why it is refused."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in KNOWN_TYPES:
        return UploadRefused(
            415,
            f"cannot read a body of type {shortened(kind)}; send application/json, "
            "application/gzip or application/vnd.apache.parquet",
        )
    if not body:
        return UploadRefused(422, "the body is empty; send one batch", ["batch: the body is empty"])
    if body[:4] == PARQUET_MAGIC:
        with tempfile.TemporaryDirectory(prefix="herdrecord-upload-") as tmp:
            path = Path(tmp) / "upload.parquet"
            path.write_bytes(body)
            return [
                Candidate(source, b.batch_id, b.frames, b.problems) for b in read_bulk(path, bulk)
            ]
    if kind in PARQUET_TYPES:
        return UploadRefused(
            422,
            "the body is not a Parquet file",
            ["file: not a Parquet file (it does not start with PAR1)"],
        )
    gzipped = content_encoding.strip().lower() == "gzip" or kind in GZIP_TYPES
    if gzipped and body[:2] != GZIP_MAGIC:
        return UploadRefused(422, "the body is not gzip", ["file: not valid gzip (no gzip header)"])
    return [read_bytes(io.BytesIO(body), source, max_batch_bytes)]


def content_type_of(body: bytes) -> str:
    """Return the content type to send a journalled file's bytes with, from its first bytes."""
    if body[:4] == PARQUET_MAGIC:
        return PARQUET_TYPES[0]
    if body[:2] == GZIP_MAGIC:
        return GZIP_TYPES[0]
    return JSON_TYPES[0]


def commit_uploads(
    record: Record,
    uploads: Sequence[Sequence[Candidate]],
    compact: bool = True,
    known: list[Ingestor] | None = None,
) -> list[list[BatchOutcome]]:
    """Commit uploads together, each whole or not at all; return each one's batch outcomes.

    A batch of an upload is written only if no batch of the same upload is rejected, so a
    client that sees 422 knows nothing of its upload was stored (duplicates stay stored).
    `known` carries the previous commit's ingestor (its copy of the ledger) to the next.
    """
    with record.writer():
        results = write_uploads(record, uploads, known)
        if compact:
            compact_if_fragmented(record)
    return results


def write_uploads(
    record: Record,
    uploads: Sequence[Sequence[Candidate]],
    known: list[Ingestor] | None = None,
) -> list[list[BatchOutcome]]:
    """Commit uploads as `commit_uploads` does, for a caller that holds the writer lock."""
    results: list[list[BatchOutcome | None]] = []
    ingestor = _ingestor(record, known)
    written: dict[str, BatchOutcome] = {}
    for candidates in uploads:
        mark = ingestor.mark()
        outcomes = [ingestor.offer(candidate) for candidate in candidates]
        if any(o is not None and o.status == "rejected" for o in outcomes):
            ingestor.rollback(mark)
            outcomes = _withdrawn(outcomes, candidates)
        results.append(outcomes)
        if ingestor.group_full():
            written.update((o.batch_id or "", o) for o in ingestor.flush())
    written.update((o.batch_id or "", o) for o in ingestor.flush())
    return [
        [
            o if o is not None else written[c.batch_id or ""]
            for o, c in zip(outcomes, candidates, strict=True)
        ]
        for outcomes, candidates in zip(results, uploads, strict=True)
    ]


def _ingestor(record: Record, known: list[Ingestor] | None) -> Ingestor:
    """Return an ingestor for this commit: the last one, renewed, while the ledger is still
    the version it wrote (no other process ingested since), else a new one."""
    if known and known[0].ledger_version == int(record.table("batches").version):
        known[0].renew()
        return known[0]
    ingestor = Ingestor(record)
    if known is not None:
        known[:] = [ingestor]
    return ingestor


def _withdrawn(
    outcomes: list[BatchOutcome | None], candidates: Sequence[Candidate]
) -> list[BatchOutcome | None]:
    """Return the outcomes of a rolled-back upload: what was queued (or was a duplicate of
    what was queued) is now rejected as withdrawn."""
    queued = {c.batch_id for o, c in zip(outcomes, candidates, strict=True) if o is None}
    return [
        BatchOutcome(c.source, c.batch_id, "rejected", (WITHDRAWN,))
        if o is None or (o.status == "duplicate" and c.batch_id in queued)
        else o
        for o, c in zip(outcomes, candidates, strict=True)
    ]
