"""The herd's animals as people look them up: by pen, status or a search, with the days seen.

An animal linking enrolled stays provisional until a person names it, or until a tag read
confirms who it is: a tracklet that read the animal's own ear tag, linked to it, ends it, and
`identity_confirmed_at` says when that tag was read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.contract.models import IDENTIFIER_PATTERN
from herdrecord.errors import InvalidInput, UnknownAnimal
from herdrecord.store.record import Record
from herdrecord.store.sql import sql_literal

STATUSES = ("active", "departed", "merged")


@dataclass(frozen=True)
class AnimalSummary:
    """One animal's row, with the UTC days it was seen."""

    animal_id: str
    display_name: str | None
    tag_id: str | None
    species: str
    sex: str | None
    birth_date: date | None
    pen_id: str | None
    status: str  # active, departed or merged
    merged_into: str | None
    provisional: bool  # enrolled by linking, neither named by a person nor confirmed by a tag
    created_at: datetime
    first_day: date | None
    last_day: date | None
    days: int
    identity_confirmed_at: datetime | None  # start of the first tag read of it, UTC
    identity_confirmed_by: str | None  # that tracklet, "device_id:track_id"


def find_animals(
    record: Record,
    pen_id: str | None = None,
    status: str | None = None,
    search: str | None = None,
) -> list[AnimalSummary]:
    """Return the animals in `pen_id` with `status` whose id, name or ear tag contains
    `search` (any case), sorted by id."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}")
    rows = record.dataset("animals").to_table()
    if pen_id is not None:
        rows = rows.filter(pc.field("pen_id") == pen_id)
    if status is not None:
        rows = rows.filter(pc.field("status") == status)
    if search:
        needle = re.escape(search.lower())
        found = pc.or_kleene(
            pc.match_substring_regex(pc.utf8_lower(rows.column("animal_id")), needle),
            pc.or_kleene(
                pc.match_substring_regex(pc.utf8_lower(rows.column("display_name")), needle),
                pc.match_substring_regex(pc.utf8_lower(rows.column("tag_id")), needle),
            ),
        )
        rows = rows.filter(pc.fill_null(found, False))
    seen = _days_seen(record)
    confirmed = tag_confirmations(record)
    summaries = [_summary(row, seen, confirmed) for row in rows.to_pylist()]
    return sorted(summaries, key=lambda a: a.animal_id)


def get_animal(record: Record, animal_id: str) -> AnimalSummary:
    """Return one animal (merged ones too: `merged_into` says where it went)."""
    if len(animal_id) > 128 or not re.match(IDENTIFIER_PATTERN, animal_id):
        raise UnknownAnimal(animal_id)
    where = f"animal_id = '{animal_id}'"  # an identifier holds no quote
    rows = record.dataset("animals").to_table(filter=where).to_pylist()
    if not rows:
        raise UnknownAnimal(animal_id)
    days = record.dataset("days").to_table(columns=["day"], filter=where).column("day")
    seen = {animal_id: (pc.min(days).as_py(), pc.max(days).as_py(), len(days))}
    return _summary(rows[0], seen, tag_confirmations(record, animal_id))


def identity_confirmation(animal: AnimalSummary) -> str | None:
    """Return the words that say a tag read confirmed the animal's identity (None: no tag
    read did); the animal page and `herdrecord history` say it so."""
    if animal.identity_confirmed_at is None:
        return None
    tag = f" of {animal.tag_id}" if animal.tag_id else ""
    return (
        f"identity confirmed by a tag read{tag} on "
        f"{animal.identity_confirmed_at:%Y-%m-%d %H:%M} UTC"
    )


def confirms_identity(animal: AnimalSummary, tracklet: str, current: bool) -> bool:
    """Return whether a decision about `tracklet` (DEVICE:TRACK) is the link in force of the
    tag read that confirmed the animal's identity."""
    return current and tracklet == animal.identity_confirmed_by


@dataclass(frozen=True)
class TagRead:
    """The tracklet whose tag read confirmed an animal."""

    at: datetime  # its start, UTC
    device_id: str
    track_id: str


def tag_confirmations(record: Record, animal_id: str | None = None) -> dict[str, TagRead]:
    """Return when a tag read first confirmed each animal (of `animal_id` alone if given):
    the start of the first tracklet that read the animal's own ear tag and is linked to it
    now (by the tag, or by looks the tag then agreed with)."""
    animals = record.dataset("animals").to_table(columns=["animal_id", "tag_id"])
    if animal_id is not None:
        animals = animals.filter(pc.field("animal_id") == animal_id)
    tags = {t for t in animals.column("tag_id").to_pylist() if t}
    if not tags:
        return {}
    read = record.dataset("tracklets").to_table(
        columns=["device_id", "track_id", "start", "tag_id"],
        filter=f"tag_id IN ({', '.join(sql_literal(t) for t in sorted(tags))})",
    )
    if read.num_rows == 0:
        return {}
    tracks = sorted(set(read.column("track_id").to_pylist()))
    # Tag reads are a small share of tracklets: only their decisions are read.
    links = record.dataset("links").to_table(
        columns=["device_id", "track_id", "animal_id", "decided_at"],
        filter=f"track_id IN ({', '.join(sql_literal(t) for t in tracks)})",
    )
    con = duckdb.connect()
    con.register("a", animals)
    con.register("t", read)
    con.register("l", links)
    rows = con.sql(_CONFIRMED_SQL).fetchall()
    con.close()
    return {
        animal: TagRead(when.astimezone(UTC), device, track) for animal, when, device, track in rows
    }


_CONFIRMED_SQL = """
WITH now_linked AS (
    SELECT device_id, track_id, arg_max(animal_id, decided_at) AS animal_id
    FROM l GROUP BY ALL
)
SELECT n.animal_id, min(t.start), arg_min(t.device_id, t.start), arg_min(t.track_id, t.start)
FROM now_linked n JOIN t USING (device_id, track_id)
JOIN a ON a.animal_id = n.animal_id AND a.tag_id = t.tag_id
GROUP BY 1
"""


def _days_seen(record: Record) -> dict[str, tuple[date, date, int]]:
    days = record.dataset("days").to_table(columns=["animal_id", "day"])
    grouped = pa.TableGroupBy(days, "animal_id").aggregate(
        [("day", "min"), ("day", "max"), ("day", "count")]
    )
    return {
        row["animal_id"]: (row["day_min"], row["day_max"], row["day_count"])
        for row in grouped.to_pylist()
    }


def _summary(
    row: dict[str, Any], seen: dict[str, tuple[date, date, int]], confirmed: dict[str, TagRead]
) -> AnimalSummary:
    first, last, count = seen.get(row["animal_id"], (None, None, 0))
    read = confirmed.get(row["animal_id"])
    return AnimalSummary(
        **{**row, "provisional": bool(row["provisional"]) and read is None},
        first_day=first,
        last_day=last,
        days=count,
        identity_confirmed_at=None if read is None else read.at,
        identity_confirmed_by=None if read is None else f"{read.device_id}:{read.track_id}",
    )
