"""Windows of UTC days (`from`/`to` of the timeline, events and exports), bounded so that
a far-off day is a clear refusal, not an overflow."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from herdrecord.errors import InvalidInput

# Wider than any animal's or record's life; within them `to` + 1 day and every UTC
# conversion stay inside Python's and Arrow's datetimes (years 1 to 9999).
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)


def check_days(first: date | None, last: date | None) -> None:
    """Raise InvalidInput for a `from` or `to` day outside FIRST_DAY to LAST_DAY."""
    for name, day in (("from", first), ("to", last)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidInput(
                f"{name} {day} is outside the days a record holds ({FIRST_DAY} to {LAST_DAY}); "
                "leave it out for an open end"
            )


def utc_window(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """Return [first 00:00 UTC, the day after last 00:00 UTC) of the days (None: open)."""
    check_days(first, last)
    start = None if first is None else datetime.combine(first, time(), UTC)
    end = None if last is None else datetime.combine(last + timedelta(days=1), time(), UTC)
    return start, end
