"""Identifiers: the (scheme, id) pairs an animal is known by, as ICAR ADE names animals.

An animal may carry many: the ear tag the edge reads (`org.herdrecord.tag`), an ISO 11784
electronic id (`eu.animalId`, 15 digits), the farm's own number (`managementTag`), a
registry's. Each holds over days (`valid_from`..`valid_to`, both included, open where
null): a tag is re-used once its animal is sold, so an event names its animal by what the
identifier meant on the event's day. The `identifiers` table is append-only. The tag
linking bound an animal to (`animals.tag_id`) counts as an `org.herdrecord.tag`
identifier holding from the start, whether or not a row says so (migration 0007 copied the
tags of its day; tags bound since live in `animals` alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa

from herdrecord.errors import InvalidInput
from herdrecord.store.record import Record
from herdrecord.store.sql import sql_literal

TAG_SCHEME = "org.herdrecord.tag"  # the ear tag or RFID the edge reads
ANIMAL_SCHEME = "org.herdrecord.animal"  # the record's own animal id
SCHEME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z0-9-]+)*$")
MAX_SCHEME = 64
MAX_ID = 64
# Schemes whose ids have one documented form (ICAR ADE's well-known identifier schemes).
FORMS: dict[str, tuple[re.Pattern[str], str]] = {
    "eu.animalId": (re.compile(r"^\d{15}$"), "15 digits (ISO 11784: country, then the number)"),
    "std.iso.11785": (re.compile(r"^\d{15}$"), "15 digits (ISO 11785 RFID, decimal)"),
}


@dataclass(frozen=True)
class Identifier:
    """One identifier of one animal, and the days it holds (None: open)."""

    animal_id: str
    scheme: str
    id: str
    valid_from: date | None
    valid_to: date | None
    recorded_by: str
    active: bool = True  # the animal is still in the herd (of two holders, it wins)

    def holds_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )

    def overlaps(self, other: Identifier) -> bool:
        lo = max(self.valid_from or date.min, other.valid_from or date.min)
        hi = min(self.valid_to or date.max, other.valid_to or date.max)
        return lo <= hi


def check_identifier(scheme: str, value: str) -> tuple[str, str]:
    """Return the scheme and id stripped, or raise InvalidInput saying what is wrong."""
    scheme, value = scheme.strip(), value.strip()
    if not scheme or len(scheme) > MAX_SCHEME or not SCHEME_PATTERN.match(scheme):
        raise InvalidInput(
            f"identifier scheme {scheme[:MAX_SCHEME]!r}: give a name such as eu.animalId or "
            f"managementTag (letters, digits, '-' and dots, at most {MAX_SCHEME} characters)"
        )
    if scheme == ANIMAL_SCHEME:
        raise InvalidInput(f"{ANIMAL_SCHEME} is the record's own animal id, not an identifier")
    if not value or len(value) > MAX_ID or not value.isprintable():
        raise InvalidInput(
            f"identifier {value[:MAX_ID]!r} under {scheme}: give 1 to {MAX_ID} printable characters"
        )
    form = FORMS.get(scheme)
    if form is not None and not form[0].match(value):
        raise InvalidInput(f"identifier {value!r} under {scheme}: give {form[1]}")
    return scheme, value


class IdentifierIndex:
    """Every identifier of the record, to resolve many names at once (CSV rows, ADE files)."""

    def __init__(self, identifiers: Iterable[Identifier]) -> None:
        self._by_pair: dict[tuple[str, str], list[Identifier]] = {}
        for ident in identifiers:
            self._by_pair.setdefault((ident.scheme, ident.id), []).append(ident)

    def of_pair(self, scheme: str, value: str) -> list[Identifier]:
        return list(self._by_pair.get((scheme.strip(), value.strip()), []))

    def resolve(self, scheme: str, value: str, on: date | None = None) -> str:
        """Return the animal that `scheme` `value` named on day `on` (today when None);
        raise InvalidInput when none did."""
        day = on or datetime.now(UTC).date()
        holders = [i for i in self.of_pair(scheme, value) if i.holds_on(day)]
        if not holders:
            known = self.of_pair(scheme, value)
            when = (
                f" on {day.isoformat()} (it named {known[0].animal_id} {_span(known[0])})"
                if known
                else ""
            )
            raise InvalidInput(
                f"no animal in the record carries {scheme} {value.strip()!r}{when} — "
                "`herdrecord animals identifiers REC` lists them"
            )
        # Of two that both hold (a tag re-used without dates), the herd's, then the newest.
        holders.sort(key=lambda i: (i.active, i.valid_from or date.min), reverse=True)
        return holders[0].animal_id


def identifiers(record: Record, animal_id: str | None = None) -> list[Identifier]:
    """Return the identifiers of every animal (of `animal_id` alone if given), in (animal,
    scheme, from) order. A merged animal's identifiers are the animal's it was merged into;
    its ear tag (linking's, perhaps a misread) is left out."""
    rows = record.dataset("identifiers").to_table().to_pylist()
    animals = (
        record.dataset("animals")
        .to_table(columns=["animal_id", "tag_id", "status", "merged_into"])
        .to_pylist()
    )
    merged = {a["animal_id"] for a in animals if a["status"] == "merged"}
    active = {a["animal_id"] for a in animals if a["status"] == "active"}
    into = {a["animal_id"]: a["merged_into"] for a in animals if a["status"] == "merged"}
    out = []
    for r in rows:
        # A merged animal was another's duplicate: what the farm named it by names that one.
        owner = _final(r["animal_id"], into)
        if owner is None:
            continue
        out.append(
            Identifier(
                owner,
                r["scheme"],
                r["id"],
                r["valid_from"],
                r["valid_to"],
                r["recorded_by"],
                owner in active,
            )
        )
    stored = {(i.animal_id, i.scheme, i.id) for i in out}
    for a in animals:
        tag = (a["tag_id"] or "").strip()
        if tag and a["animal_id"] not in merged and (a["animal_id"], TAG_SCHEME, tag) not in stored:
            out.append(
                Identifier(
                    a["animal_id"], TAG_SCHEME, tag, None, None, "linking", a["animal_id"] in active
                )
            )
    if animal_id is not None:
        out = [i for i in out if i.animal_id == animal_id]
    return sorted(out, key=lambda i: (i.animal_id, i.scheme, i.valid_from or date.min, i.id))


def _final(animal_id: str, into: dict[str, str | None]) -> str | None:
    """Return the animal `animal_id` was merged into at the end of its chain of merges
    (itself when it was not merged; None when the chain ends nowhere or loops)."""
    seen = set()
    while animal_id in into:
        if animal_id in seen:
            return None
        seen.add(animal_id)
        target = into[animal_id]
        if target is None:
            return None
        animal_id = target
    return animal_id


def identifier_index(record: Record) -> IdentifierIndex:
    return IdentifierIndex(identifiers(record))


def animal_by_identifier(record: Record, scheme: str, value: str, on: date | None = None) -> str:
    """Return the animal `scheme` `value` named on day `on` (today when None)."""
    return identifier_index(record).resolve(scheme, value, on)


def add_identifier(
    record: Record,
    animal_id: str,
    scheme: str,
    value: str,
    valid_from: date | None,
    valid_to: date | None,
    by: str,
) -> tuple[Identifier, bool]:
    """Record that `animal_id` carries `scheme` `value` over the given days; return it and
    whether it was new (the same identifier of the same animal over days it already holds
    is a repeat, stored once). Refused, with nothing stored: an unknown or merged animal, a
    bad scheme or id, days in the wrong order, or days another animal carries it."""
    scheme, value = check_identifier(scheme, value)
    by = by.strip()
    if not by:
        raise InvalidInput("say who records the identifier (--by)")
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise InvalidInput(
            f"the identifier holds from {valid_from.isoformat()} to {valid_to.isoformat()}: "
            "the last day is before the first"
        )
    wanted = Identifier(animal_id, scheme, value, valid_from, valid_to, by)
    with record.writer():
        status = _status(record, animal_id)
        if status is None:
            raise InvalidInput(f"no animal {animal_id!r} in the record")
        if status == "merged":
            raise InvalidInput(f"animal {animal_id} was merged into another; name that one")
        for held in identifier_index(record).of_pair(scheme, value):
            if not held.overlaps(wanted):
                continue
            if held.animal_id != animal_id:
                raise InvalidInput(
                    f"{scheme} {value!r} is {held.animal_id}'s {_span(held)}; give days "
                    "apart from those (--from/--to)"
                )
            if (held.valid_from or date.min) <= (valid_from or date.min) and (
                valid_to or date.max
            ) <= (held.valid_to or date.max):
                return held, False
        record.table("identifiers").add(
            pa.table(
                {
                    "animal_id": [animal_id],
                    "scheme": [scheme],
                    "id": [value],
                    "valid_from": pa.array([valid_from], pa.date32()),
                    "valid_to": pa.array([valid_to], pa.date32()),
                    "recorded_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
                    "recorded_by": [by],
                },
                schema=record.table("identifiers").schema,
            )
        )
    return wanted, True


def _status(record: Record, animal_id: str) -> str | None:
    rows = (
        record.dataset("animals")
        .to_table(columns=["animal_id", "status"], filter=f"animal_id = {sql_literal(animal_id)}")
        .to_pylist()
    )
    return None if not rows else str(rows[0]["status"])


def _span(ident: Identifier) -> str:
    start = ident.valid_from.isoformat() if ident.valid_from else "the start"
    end = ident.valid_to.isoformat() if ident.valid_to else "now"
    return f"from {start} to {end}"
