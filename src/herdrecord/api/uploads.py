"""Read an upload's body into batches: JSON, gzip JSON, or bulk Parquet.

`parse_upload` returns a refusal instead of raising: reading a body is the adapter's job,
and which HTTP status a refusal gets is decided by the route.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from herdrecord.bulk import read_bulk
from herdrecord.intake import GZIP_MAGIC, PARQUET_MAGIC, Candidate, read_bytes

JSON_TYPES = ("application/json",)
GZIP_TYPES = ("application/gzip", "application/x-gzip")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
KNOWN_TYPES = ("", "application/octet-stream", *JSON_TYPES, *GZIP_TYPES, *PARQUET_TYPES)


@dataclass(frozen=True)
class UploadRefused:
    """Why a body cannot be read at all (415 or 422), before any batch is looked at."""

    status: int
    message: str
    problems: list[str] = field(default_factory=list)


def parse_upload(
    content_type: str, content_encoding: str, body: bytes, max_batch_bytes: int, source: str
) -> list[Candidate] | UploadRefused:
    """Return the batches of the body (each checked by the contract), or why it is refused."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in KNOWN_TYPES:
        return UploadRefused(
            415,
            f"cannot read a body of type {kind!r}; send application/json, application/gzip "
            "or application/vnd.apache.parquet",
        )
    if not body:
        return UploadRefused(422, "the body is empty; send one batch", ["batch: the body is empty"])
    if body[:4] == PARQUET_MAGIC:
        with tempfile.TemporaryDirectory(prefix="herdrecord-upload-") as tmp:
            path = Path(tmp) / "upload.parquet"
            path.write_bytes(body)
            return [Candidate(source, b.batch_id, b.frames, b.problems) for b in read_bulk(path)]
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
