"""The visual record: an animal's chosen keyframes by day, and a keyframe's JPEG."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from herdrecord.contract.models import IDENTIFIER_PATTERN
from herdrecord.days.derive import read_days
from herdrecord.errors import (
    UnknownKeyframe,
    UnknownTracklet,
)
from herdrecord.store.record import Record


@dataclass(frozen=True)
class KeyframeRef:
    """One keyframe an animal-day chose."""

    day: date
    device_id: str
    track_id: str
    t: datetime  # frame time, UTC

    @property
    def query(self) -> str:
        """Return the URL query naming this keyframe (`device_id`, `track_id`, `t`)."""
        return urlencode(
            {"device_id": self.device_id, "track_id": self.track_id, "t": self.t.isoformat()}
        )


def animal_keyframes(
    record: Record, animal_id: str, start: date | None = None, end: date | None = None
) -> list[KeyframeRef]:
    """Return the keyframes the animal's days chose within [start, end], newest day first."""
    days = read_days(record, animal_id, start, end).select(["day", "keyframes"])
    return [
        KeyframeRef(row["day"], ref["device_id"], ref["track_id"], ref["t"])
        for row in reversed(days.to_pylist())
        for ref in row["keyframes"]
    ]


def tracklet_keyframes(record: Record, device_id: str, track_id: str) -> list[KeyframeRef]:
    """Return every stored keyframe of one tracklet, oldest first (`day` is its UTC day)."""
    _check_identifiers(device_id, track_id)
    rows = record.dataset("keyframes").to_table(
        columns=["t"], filter=f"device_id = '{device_id}' AND track_id = '{track_id}'"
    )
    times = sorted(rows.column("t").to_pylist())
    return [KeyframeRef(t.astimezone(UTC).date(), device_id, track_id, t) for t in times]


def keyframe_jpeg(record: Record, device_id: str, track_id: str, t: datetime) -> bytes:
    """Return the JPEG bytes of one keyframe."""
    if t.tzinfo is None or not _identifiers(device_id, track_id):
        raise UnknownKeyframe(device_id, track_id, t)
    # A tracklet has a handful of keyframes: read them (identifiers hold no quote, so the
    # literals cannot be broken out of), match the time here, exactly, and show the one found
    # only if its batch is committed (one keyed lookup, not a read of the whole ledger).
    rows = record.dataset("keyframes").to_table(
        columns=["t", "jpeg", "batch_id"],
        filter=f"device_id = '{device_id}' AND track_id = '{track_id}'",
    )
    for row in range(rows.num_rows):
        if rows.column("t")[row].as_py() != t:
            continue
        batch_id = str(rows.column("batch_id")[row].as_py()).replace("'", "''")
        ledger = record.dataset("batches")
        if ledger.count_rows(filter=f"batch_id = '{batch_id}'"):
            found: bytes = rows.column("jpeg")[row].as_py()
            return found
    raise UnknownKeyframe(device_id, track_id, t)


def _identifiers(*parts: str) -> bool:
    """Whether every part is an identifier (which holds no quote: safe in a Lance filter)."""
    return all(len(part) <= 128 and re.match(IDENTIFIER_PATTERN, part) for part in parts)


def _check_identifiers(device_id: str, track_id: str) -> None:
    if not _identifiers(device_id, track_id):
        raise UnknownTracklet(device_id, track_id)
