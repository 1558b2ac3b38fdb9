"""The herd's animals as people look them up: by pen, status or a search, with the days seen."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.contract.models import IDENTIFIER_PATTERN
from herdrecord.errors import InvalidInput, UnknownAnimal
from herdrecord.store.record import Record

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
    provisional: bool
    created_at: datetime
    first_day: date | None
    last_day: date | None
    days: int


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
    rows = record.table("animals").to_lance().to_table()
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
    summaries = [_summary(row, seen) for row in rows.to_pylist()]
    return sorted(summaries, key=lambda a: a.animal_id)


def get_animal(record: Record, animal_id: str) -> AnimalSummary:
    """Return one animal (merged ones too: `merged_into` says where it went)."""
    if len(animal_id) > 128 or not re.match(IDENTIFIER_PATTERN, animal_id):
        raise UnknownAnimal(animal_id)
    where = f"animal_id = '{animal_id}'"  # an identifier holds no quote
    rows = record.table("animals").to_lance().to_table(filter=where).to_pylist()
    if not rows:
        raise UnknownAnimal(animal_id)
    days = record.table("days").to_lance().to_table(columns=["day"], filter=where).column("day")
    seen = {animal_id: (pc.min(days).as_py(), pc.max(days).as_py(), len(days))}
    return _summary(rows[0], seen)


def _days_seen(record: Record) -> dict[str, tuple[date, date, int]]:
    days = record.table("days").to_lance().to_table(columns=["animal_id", "day"])
    grouped = pa.TableGroupBy(days, "animal_id").aggregate(
        [("day", "min"), ("day", "max"), ("day", "count")]
    )
    return {
        row["animal_id"]: (row["day_min"], row["day_max"], row["day_count"])
        for row in grouped.to_pylist()
    }


def _summary(row: dict[str, Any], seen: dict[str, tuple[date, date, int]]) -> AnimalSummary:
    first, last, count = seen.get(row["animal_id"], (None, None, 0))
    return AnimalSummary(**row, first_day=first, last_day=last, days=count)
