"""Save and load the FAISS index beside a record, stamped with what it was built from.

The index is a cache of the pool table. One file holds a stamp header and the FAISS bytes:

    MAGIC (8 bytes) | header length (8 bytes, little-endian) | header (JSON) | FAISS bytes

The header carries the stamp, the search depth nprobe was calibrated for, and the SHA-256
of the FAISS bytes, so a stale, truncated or corrupt file is recognised and reported as
missing (the caller rebuilds), never loaded.
Keeping stamp and index in one file, replaced atomically, leaves no moment at which a
sidecar stamp could describe a different index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from herdrecord.reid.faiss_index import DEFAULT_CONFIG, FaissConfig, FaissIndex

MAGIC = b"HRDIDX\x00\x01"
FORMAT_VERSION = 1
_LENGTH = struct.Struct("<Q")
# A header is a few hundred bytes; a bigger length field means a corrupt or foreign file.
_MAX_HEADER_BYTES = 1 << 16

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexStamp:
    """What an index file was built from; any difference from the record's means stale."""

    table_version: int
    """Version of the pool table the index was built from."""
    dim: int
    """Embedding dimension."""
    embedder: str
    """Name of the embedder whose vectors the index holds."""
    count: int
    """Number of vectors in the index."""


def index_bytes(index: FaissIndex, stamp: IndexStamp) -> bytes:
    """Return `index` with its `stamp` as the bytes of one index file."""
    if stamp.dim != index.dim or stamp.count != len(index):
        raise ValueError(
            f"stamp says {stamp.count} vectors of dim {stamp.dim} but the index holds "
            f"{len(index)} of dim {index.dim}; stamp what was indexed"
        )
    payload = index.to_bytes()
    header = json.dumps(
        {
            "format": FORMAT_VERSION,
            "stamp": dataclasses.asdict(stamp),
            "recall_k": index.config.recall_k,
            "payload_bytes": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
        }
    ).encode()
    return MAGIC + _LENGTH.pack(len(header)) + header + payload


def save_index(index: FaissIndex, path: Path, stamp: IndexStamp) -> None:
    """Write `index` with its `stamp` to `path` atomically (temp file, fsync, rename)."""
    from herdrecord.store.location import write_durably

    write_durably(path, index_bytes(index, stamp))


def load_index(
    path: Path,
    expected: IndexStamp,
    config: FaissConfig = DEFAULT_CONFIG,
) -> FaissIndex | None:
    """Return the index saved at `path` if its stamp equals `expected`; None means rebuild.

    None when the file is missing, unreadable, corrupt, of another format, stale, or
    calibrated for another `config.recall_k`.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        logger.warning("cannot read index file %s (%s); it will be rebuilt", path, error)
        return None
    return load_index_bytes(data, expected, str(path), config)


def load_index_bytes(
    data: bytes | None,
    expected: IndexStamp,
    where: str,
    config: FaissConfig = DEFAULT_CONFIG,
) -> FaissIndex | None:
    """Return the index in `data` (an index file's bytes, None if there is none) if its stamp
    equals `expected`; None means rebuild."""
    if data is None:
        return None
    try:
        return _parse(data, expected, config)
    except _Unusable as reason:
        logger.info("index file of %s is %s; it will be rebuilt", where, reason)
        return None


class _Unusable(Exception):
    """An index file that must be rebuilt; the message says why."""


def _parse(data: bytes, expected: IndexStamp, config: FaissConfig) -> FaissIndex:
    prefix = len(MAGIC) + _LENGTH.size
    if len(data) < prefix or not data.startswith(MAGIC):
        raise _Unusable("not a herdrecord index file")
    (header_bytes,) = _LENGTH.unpack_from(data, len(MAGIC))
    if header_bytes > _MAX_HEADER_BYTES or prefix + header_bytes > len(data):
        raise _Unusable("corrupt (bad header length)")
    try:
        header = json.loads(data[prefix : prefix + header_bytes])
        version = header["format"]
        stamp = IndexStamp(**header["stamp"])
        payload_bytes = header["payload_bytes"]
        payload_sha256 = header["payload_sha256"]
        recall_k = header["recall_k"]
    except (ValueError, KeyError, TypeError) as error:
        raise _Unusable(f"corrupt (bad header: {error})") from error
    if version != FORMAT_VERSION:
        raise _Unusable(f"in format {version}, not {FORMAT_VERSION}")
    if stamp != expected:
        raise _Unusable(f"stale (built from {stamp}, the record is at {expected})")
    if recall_k != config.recall_k:
        # nprobe was calibrated for another search depth; recalibrating means retraining.
        raise _Unusable(f"calibrated for recall@{recall_k}, not @{config.recall_k}")
    payload = data[prefix + header_bytes :]
    if len(payload) != payload_bytes or hashlib.sha256(payload).hexdigest() != payload_sha256:
        raise _Unusable("corrupt (checksum mismatch)")
    try:
        index = FaissIndex.from_bytes(payload, expected_size=stamp.count, config=config)
    except ValueError as error:
        raise _Unusable(f"corrupt ({error})") from error
    if index.dim != stamp.dim or len(index) != stamp.count:
        raise _Unusable(f"inconsistent (holds {len(index)} vectors of dim {index.dim})")
    return index
