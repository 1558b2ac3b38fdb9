"""Limits checked before a batch's items are, so a hostile batch costs bounded memory and time.

A JSON batch is validated up to each list's first error (the models' first-errors variant),
and only a small one again for the full listing; a bulk Parquet file is judged by its footer
(rows, and the bytes its values take once decoded) before any data page is decoded. Every
problem list is cut to `MAX_LISTED` entries and every quoted value to `MAX_VALUE_CHARS`, so
a small upload that expands to millions of bad items is refused in milliseconds with a short
reply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from herdrecord.config import Settings

MAX_LISTED = 50  # problems listed per batch; the rest are counted in one last line
MAX_VALUE_CHARS = 40  # longest value quoted in a problem
FULL_LISTING_BYTES = 64 * 1024  # a JSON batch this small lists every problem, not the first
BULK_ROWS_FACTOR = 4  # a bulk file may hold this many full batches' tracklet rows
MAX_TEXT_CHARS = 128  # longest identifier or label in a bulk file's text columns


@dataclass(frozen=True)
class BulkLimits:
    """The size a bulk Parquet file may have, from the record's settings."""

    max_rows: int  # tracklet rows in the file
    max_bytes: int  # bytes of its values once decoded
    max_value_bytes: int  # longest binary value (a keyframe's JPEG)

    @classmethod
    def from_settings(cls, settings: Settings) -> BulkLimits:
        """Return the limits of the given settings."""
        return cls(
            max_rows=BULK_ROWS_FACTOR * settings.max_tracklets_per_batch,
            max_bytes=settings.max_bulk_file_bytes,
            max_value_bytes=settings.max_keyframe_bytes,
        )


def capped(problems: Iterable[str], limit: int = MAX_LISTED) -> list[str]:
    """Return the first `limit` problems, and one line counting the rest if there are more."""
    listed: list[str] = []
    more = 0
    for problem in problems:
        if len(listed) < limit:
            listed.append(problem)
        else:
            more += 1
    if more:
        listed.append(f"batch: and {more} more problems")
    return listed


def shortened(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """Return `repr(value)` cut to about `limit` characters, for quoting in a problem."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
