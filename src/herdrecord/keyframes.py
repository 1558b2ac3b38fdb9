"""The visual record: an animal's chosen keyframes by day, and a keyframe's JPEG."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from herdrecord.contract import IDENTIFIER_PATTERN
from herdrecord.errors import HerdrecordError
from herdrecord.store import Record
from herdrecord.timeline import read_days


class UnknownKeyframe(HerdrecordError):
    """No keyframe of that tracklet at that time."""

    def __init__(self, device_id: str, track_id: str, t: datetime) -> None:
        self.device_id = device_id
        self.track_id = track_id
        self.t = t
        super().__init__(f"no keyframe of {device_id}:{track_id} at {t.isoformat()}")


@dataclass(frozen=True)
class KeyframeRef:
    """One keyframe an animal-day chose."""

    day: date
    device_id: str
    track_id: str
    t: datetime  # frame time, UTC


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


def keyframe_jpeg(record: Record, device_id: str, track_id: str, t: datetime) -> bytes:
    """Return the JPEG bytes of one keyframe."""
    if t.tzinfo is None:
        raise UnknownKeyframe(device_id, track_id, t)
    for part in (device_id, track_id):
        if len(part) > 128 or not re.match(IDENTIFIER_PATTERN, part):
            raise UnknownKeyframe(device_id, track_id, t)
    # A tracklet has a handful of keyframes: read them (identifiers hold no quote, so the
    # literals cannot be broken out of) and match the time here, exactly.
    rows = record.read_visible(
        "keyframes",
        ["t", "jpeg"],
        where=f"device_id = '{device_id}' AND track_id = '{track_id}'",
    )
    for stored, jpeg in zip(rows.column("t").to_pylist(), rows.column("jpeg"), strict=True):
        if stored == t:
            found: bytes = jpeg.as_py()
            return found
    raise UnknownKeyframe(device_id, track_id, t)
