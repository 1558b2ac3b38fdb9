"""Read edge batches from files, directories and streams into BatchFrames, with size limits."""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydantic
from pydantic_core import ErrorDetails

from herdrecord.config import Settings
from herdrecord.contract.frames import BatchFrames, frames_from_model
from herdrecord.contract.limits import FULL_LISTING_BYTES, BulkLimits, capped
from herdrecord.contract.models import (
    IDENTIFIER_PATTERN,
    EdgeBatch,
    EdgeBatchFirstErrors,
    format_loc,
)
from herdrecord.contract.parquet import read_bulk
from herdrecord.errors import InvalidInput

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
BATCH_SUFFIXES = (".json", ".json.gz", ".parquet")


@dataclass(frozen=True)
class Candidate:
    """One batch as read from its source: frames to check, or why it could not be read."""

    source: str
    batch_id: str | None
    frames: BatchFrames | None
    problems: tuple[str, ...]


def batch_files(paths: Sequence[Path]) -> list[Path]:
    """Return the batch files named by `paths` (files, or directories searched recursively)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_batch_name(p))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInput(f"{path}: no such file or directory")
    return files


def _is_batch_name(path: Path) -> bool:
    return path.name.endswith(BATCH_SUFFIXES)


def read_file(path: Path, max_bytes: int, bulk: BulkLimits | None = None) -> Iterator[Candidate]:
    """Yield the batches in one file (JSON or gzip JSON of at most `max_bytes`, or a bulk
    Parquet file within `bulk`, by default the default settings' limits)."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        yield Candidate(source, None, None, (f"file: cannot read ({exc.strerror})",))
        return
    if head == PARQUET_MAGIC:
        for read in read_bulk(path, bulk or BulkLimits.from_settings(Settings())):
            yield Candidate(source, read.batch_id, read.frames, read.problems)
        return
    with path.open("rb") as handle:
        yield read_bytes(handle, source, max_bytes)


def read_bytes(stream: io.BufferedIOBase | io.BytesIO, source: str, max_bytes: int) -> Candidate:
    """Return the one JSON batch (plain or gzip) in a byte stream."""
    try:
        data = stream.read(max_bytes + 1)
        if data[:2] == GZIP_MAGIC:
            data = _gunzip(data, max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        return Candidate(source, None, None, (f"file: not valid gzip ({exc})",))
    if len(data) > max_bytes:
        return Candidate(
            source,
            None,
            None,
            (f"batch: larger than the limit of {max_bytes} bytes; split it into smaller batches",),
        )
    return parse_json(data, source)


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    """Decompress at most `max_bytes + 1` bytes, so a gzip bomb cannot exhaust memory."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
        return unzipped.read(max_bytes + 1)


def parse_json(data: bytes, source: str) -> Candidate:
    """Return a JSON batch validated by the contract models, as frames or problems.

    Items are checked up to each list's first error, so a hostile batch of a million bad items
    costs one error per list; a batch under `FULL_LISTING_BYTES` is checked again to list every
    problem. At most `MAX_LISTED` problems are listed, and a count of the rest. The counts
    (tracklets, samples, ...) are the record's rules', checked on the frames."""
    try:
        batch = EdgeBatchFirstErrors.model_validate_json(data)
    except pydantic.ValidationError as first:
        errors = first.errors() if len(data) > FULL_LISTING_BYTES else _every_error(data)
        problems = capped(f"{format_loc(e['loc'])}: {e['msg']}" for e in errors)
        return Candidate(source, _batch_id_of(data), None, tuple(problems))
    return Candidate(source, batch.batch_id, frames_from_model(batch), ())


def _every_error(data: bytes) -> list[ErrorDetails]:
    """Return every error of a small batch (the first-errors check stopped at each list's first)."""
    try:
        EdgeBatch.model_validate_json(data)
    except pydantic.ValidationError as exc:
        return exc.errors()
    return []  # pragma: no cover - the first-errors check refused the same bytes


_BATCH_ID = re.compile(rb'"batch_id"\s*:\s*"(' + IDENTIFIER_PATTERN.strip("^$").encode() + rb')"')


def _batch_id_of(data: bytes) -> str | None:
    """Return the batch_id of an invalid batch if its first 64 KB name one, for the report
    (never parsing the whole of a body that may be hostile)."""
    found = _BATCH_ID.search(data[:FULL_LISTING_BYTES])
    return found.group(1).decode() if found else None
