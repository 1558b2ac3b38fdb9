"""Health and production events in the record: append-only rows, corrections, retractions.

The `events` table is append-only. A correction is a new row whose `supersedes` names the
event it replaces; a retraction is a new row with `retracted = true` superseding the event it
withdraws. The events in force are those that no row supersedes and that are not retractions.

Writing an event also updates the animal, following the events in force: the latest `move`
sets its pen, the latest `birth` its birth date, a `death` or `sale` departs it; when a
correction or retraction withdraws its last death or sale, a departed animal is active again.
With no move or birth left in force, the pen and birth date keep their last value. Times are
kept in UTC; a birth date is the UTC date of the birth.

Recording is idempotent: an event given again (by its sender's `event_key`, or else by the
same animal, kind, time and values) is reported as a duplicate and not stored, so a file
imported twice or a request sent twice stores its events once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.errors import (
    EventSuperseded,
    InvalidInput,
    UnknownAnimal,
    UnknownEvent,
)
from herdrecord.events.rules import (
    DEPARTURES,
    EVENT_KINDS,
    EventInput,
    EventsRejected,
    check_retraction,
    parse_event,
)
from herdrecord.store.linktable import owe_relink
from herdrecord.store.record import Record

FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks of phones and scales drift a little


@dataclass(frozen=True)
class EventDuplicate:
    """An event given again: not stored; `event_id` is the one recorded before it."""

    position: int  # among the events given (a CSV's row number, from 1)
    label: str  # how the problem list names it: "", "events[3]: ", "row 3 (line 4): "
    event_id: str
    by_key: bool  # the same event_key; else the same animal, kind, time and values
    withdrawn: bool  # that event has since been corrected or retracted

    def describe(self) -> str:
        """Return one line saying what this repeats: `row 3 (line 4): a repeat of ...`."""
        what = "the same event_key as" if self.by_key else "a repeat of"
        since = " (since corrected or retracted)" if self.withdrawn else ""
        return f"{self.label}{what} event {self.event_id}{since}; not stored"


@dataclass(frozen=True)
class EventsRecorded:
    """What a call that records events did: the new events, and the repeats left out."""

    event_ids: tuple[str, ...]  # the events stored, in the order given
    duplicates: tuple[EventDuplicate, ...]


def record_problems(
    record: Record, events: Sequence[EventInput], *, now: datetime
) -> list[tuple[int, str]]:
    """Return (index, problem) for events the record cannot take: unknown, merged, time.

    An event may not lie in the future, before its animal's birth date, nor, without one,
    more than `event_days_before_first_seen` days before the animal was first seen.
    """
    animals = {
        row["animal_id"]: row
        for row in record.dataset("animals")
        .to_table(columns=["animal_id", "status", "merged_into", "birth_date", "created_at"])
        .to_pylist()
    }
    births = {e.animal_id: e.at.astimezone(UTC).date() for e in events if e.kind == "birth"}
    first_seen = _first_seen(record, {e.animal_id for e in events}, animals)
    margin = timedelta(days=record.settings.event_days_before_first_seen)
    return [
        (index, problem)
        for index, event in enumerate(events)
        for problem in _problems_with(
            event, animals.get(event.animal_id), births, first_seen, margin, now
        )
    ]


def _problems_with(
    event: EventInput,
    animal: dict[str, Any] | None,
    births: dict[str, date],
    first_seen: dict[str, date],
    margin: timedelta,
    now: datetime,
) -> list[str]:
    """Return what keeps the record from taking `event` about `animal` (None: unknown)."""
    if animal is None:
        return [f"animal_id: {UnknownAnimal(event.animal_id)}"]
    problems = []
    at = event.at.astimezone(UTC)
    if animal["status"] == "merged":
        problems.append(
            f"animal_id: {event.animal_id} was merged into {animal['merged_into']}; "
            "record the event on that id"
        )
    if at > now + FUTURE_TOLERANCE:
        problems.append(
            f"at: {at:%Y-%m-%d %H:%M}Z is in the future (now {now:%Y-%m-%d %H:%M}Z); "
            "check the date and its time zone"
        )
    born: date | None = births.get(event.animal_id, animal["birth_date"])
    seen = first_seen.get(event.animal_id)
    if event.kind != "birth" and born is not None:
        if at.date() < born:
            problems.append(f"at: {at:%Y-%m-%d} is before {event.animal_id}'s birth date {born}")
    elif seen is not None and at.date() < _days_before(seen, margin):
        problems.append(
            f"at: {at:%Y-%m-%d} is more than {margin.days} days before {event.animal_id} was "
            f"first seen ({seen}); check the year, or raise "
            "HERDRECORD_EVENT_DAYS_BEFORE_FIRST_SEEN to import older history"
        )
    return problems


def _days_before(day: date, margin: timedelta) -> date:
    try:
        return day - margin
    except OverflowError:  # a margin reaching past the year 1 bounds nothing
        return date.min


def _first_seen(
    record: Record, animal_ids: set[str], animals: Mapping[str, dict[str, Any]]
) -> dict[str, date]:
    """Return the day each animal was first seen: its first day in `days`, or its enrolment
    if that is earlier (an animal enrolled by hand before any camera saw it)."""
    seen = {a: animals[a]["created_at"].astimezone(UTC).date() for a in animal_ids if a in animals}
    if not seen:
        return seen
    days = (
        record.dataset("days")
        .to_table(
            columns=["animal_id", "day"],
            filter=pc.is_in(pc.field("animal_id"), pa.array(sorted(seen))),
        )
        .group_by("animal_id")
        .aggregate([("day", "min")])
    )
    for animal_id, first in zip(
        days.column("animal_id").to_pylist(), days.column("day_min").to_pylist(), strict=True
    ):
        seen[animal_id] = min(seen[animal_id], first)
    return seen


def add_events(
    record: Record, events: Sequence[EventInput], *, now: datetime | None = None
) -> EventsRecorded:
    """Store the events all together or none of them; a repeat of an event already
    recorded (or given earlier in `events`) is reported as a duplicate and not stored."""
    single = len(events) == 1
    labelled = [(i, "" if single else f"events[{i}]: ", e) for i, e in enumerate(events)]
    return add_labelled_events(record, labelled, now=now)


def add_labelled_events(
    record: Record,
    labelled: Sequence[tuple[int, str, EventInput]],
    problems: Sequence[tuple[int, str]] = (),
    *,
    now: datetime | None = None,
) -> EventsRecorded:
    """Store (position, label, event)s all together or none of them, leaving out repeats.

    `problems` are those found before (rows that did not parse), by position and labelled;
    all are reported in position order, each problem of the record after its event's label.

    An event with an `event_key` repeats the event stored with that key (the same key with
    other content is a problem); one without repeats a stored event with the same animal,
    kind, time and values (the author aside), even one since corrected or retracted, so that
    importing a file again never brings back what was fixed.
    """
    now = _now(now)
    if not labelled and not problems:
        return EventsRecorded((), ())
    with record.writer():
        ids = [uuid.uuid4().hex for _ in labelled]
        found = list(problems)
        duplicates: list[EventDuplicate] = []
        fresh: list[int] = []
        repeats = _Repeats(record, [event for _, _, event in labelled])
        for index, (position, label, event) in enumerate(labelled):
            match = repeats.find(event)
            if isinstance(match, str):
                found.append((position, label + match))
            elif match is not None:
                earlier, withdrawn = match
                duplicates.append(
                    EventDuplicate(position, label, earlier, event.event_key is not None, withdrawn)
                )
            else:
                repeats.remember(event, ids[index])
                fresh.append(index)
        events = [labelled[i][2] for i in fresh]
        for index, problem in record_problems(record, events, now=now):
            position, label, _ = labelled[fresh[index]]
            found.append((position, label + problem))
        if found:
            raise EventsRejected([p for _, p in sorted(found, key=lambda item: item[0])])
        stored = tuple(ids[i] for i in fresh)
        if events:
            _write(record, [_row(event, now) for event in events], list(stored))
            _follow_events(record, {event.animal_id for event in events}, set())
            _owe_relinks(record, [(e.animal_id, e.kind, e.at) for e in events])
        return EventsRecorded(stored, tuple(duplicates))


Identity = tuple[Any, ...]
_IDENTITY_COLUMNS = (
    "animal_id",
    "kind",
    "at",
    "scale",
    "value",
    "unit",
    "code",
    "result",
    "withdrawal_days",
    "note",
)
_REPEAT_COLUMNS = ("event_id", "event_key", "supersedes", "retracted")


def event_identity(event: Mapping[str, Any]) -> Identity:
    """Return what makes two events the same: animal, kind, UTC time and every value but the
    author (who typed it in is not what happened)."""
    withdrawal = event["withdrawal_days"]
    return (
        event["animal_id"],
        event["kind"],
        event["at"].astimezone(UTC),
        event["scale"],
        event["value"],
        event["unit"],
        event["code"],
        event["result"],
        # stored as float32: compare what the column keeps
        None if withdrawal is None else float(np.float32(withdrawal)),
        event["note"],
    )


class _Repeats:
    """The stored events that new ones may repeat, by key and by identity."""

    def __init__(self, record: Record, events: Sequence[EventInput]) -> None:
        rows = record.read_visible("events", columns=[*_IDENTITY_COLUMNS, *_REPEAT_COLUMNS])
        # A repeat has the same time or the same key: only those rows reach Python.
        times = pa.array([e.at.astimezone(UTC) for e in events], rows.schema.field("at").type)
        keys = pa.array([e.event_key for e in events if e.event_key is not None], pa.string())
        withdrawn = pc.drop_null(rows.column("supersedes"))
        candidates = rows.filter(
            pc.and_(
                pc.invert(pc.fill_null(rows.column("retracted"), False)),
                pc.or_(
                    pc.is_in(rows.column("at"), value_set=times),
                    pc.fill_null(pc.is_in(rows.column("event_key"), value_set=keys), False),
                ),
            )
        )
        gone = pc.is_in(candidates.column("event_id"), value_set=withdrawn).to_pylist()
        self._by_key: dict[str, tuple[str, Identity, bool]] = {}
        self._by_identity: dict[Identity, tuple[str, bool]] = {}
        for row, was_withdrawn in zip(candidates.to_pylist(), gone, strict=True):
            if row["event_key"] is not None:
                self._by_key[row["event_key"]] = (
                    row["event_id"],
                    event_identity(row),
                    was_withdrawn,
                )
            else:
                self._by_identity.setdefault(event_identity(row), (row["event_id"], was_withdrawn))

    def find(self, event: EventInput) -> tuple[str, bool] | str | None:
        """Return (event id, withdrawn) of the event `event` repeats, a problem, or None."""
        identity = event_identity(event.model_dump())
        if event.event_key is None:
            return self._by_identity.get(identity)
        if event.event_key not in self._by_key:
            return None
        event_id, stored, gone = self._by_key[event.event_key]
        if stored != identity:
            return (
                f"event_key: {event.event_key!r} was given to event {event_id}, which says "
                "something else; give a new event a new key"
            )
        return event_id, gone

    def remember(self, event: EventInput, event_id: str) -> None:
        """Note an event about to be stored, so that a repeat later in the call is found."""
        identity = event_identity(event.model_dump())
        if event.event_key is None:
            self._by_identity.setdefault(identity, (event_id, False))
        else:
            self._by_key[event.event_key] = (event_id, identity, False)


def amended_event(record: Record, event_id: str, changes: Mapping[str, object]) -> EventInput:
    """Return the stored event with `changes` applied, as input for `correct_event`.

    `changes` usually carries the author of the correction, who replaces the stored author.

    A change of kind keeps only the animal, time, author and note of the stored event: the
    other fields mean something else for another kind.
    """
    stored = _in_force(record, event_id)
    # A correction is a new row of the same event, not the sender's keyed original.
    base = {name: stored[name] for name in EventInput.model_fields if name != "event_key"}
    if "kind" in changes and changes["kind"] != stored["kind"]:
        base = {name: base[name] for name in ("animal_id", "at", "author", "note")}
    return parse_event({**base, **changes})


def correct_event(
    record: Record, event_id: str, replacement: EventInput, *, now: datetime | None = None
) -> str:
    """Replace an event in force with `replacement`; return the new event's id."""
    now = _now(now)
    with record.writer():
        old = _in_force(record, event_id)
        problems = [p for _, p in record_problems(record, [replacement], now=now)]
        if problems:
            raise EventsRejected(problems)
        new_id = _write(record, [_row(replacement, now, supersedes=event_id)])[0]
        _follow_events(record, {old["animal_id"], replacement.animal_id}, _reopened(old))
        _owe_relinks(
            record,
            [
                (old["animal_id"], old["kind"], old["at"]),
                (replacement.animal_id, replacement.kind, replacement.at),
            ],
        )
        return new_id


def retract_event(
    record: Record, event_id: str, author: str, reason: str, *, now: datetime | None = None
) -> str:
    """Withdraw an event in force (recorded in error); return the retraction's id."""
    now = _now(now)
    author, reason = check_retraction(author, reason)
    with record.writer():
        old = _in_force(record, event_id)
        row = {
            **{name: None for name in EventInput.model_fields},
            "animal_id": old["animal_id"],
            "kind": old["kind"],
            "at": old["at"],
            "author": author,
            "note": reason,
            "recorded_at": now,
            "supersedes": event_id,
            "retracted": True,
        }
        new_id = _write(record, [row])[0]
        _follow_events(record, {old["animal_id"]}, _reopened(old))
        _owe_relinks(record, [(old["animal_id"], old["kind"], old["at"])])
        return new_id


def current_events(
    record: Record,
    animal_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
) -> pa.Table:
    """Return the events in force with start <= at < end, sorted by `at`.

    An animal's events include those recorded under ids later merged into it.
    """
    rows = _in_force_rows(record)
    if animal_id is not None:
        ids = _merged_into(record, animal_id)
        rows = rows.filter(pc.is_in(rows.column("animal_id"), value_set=pa.array(ids)))
    if start is not None:
        rows = rows.filter(pc.field("at") >= _aware(start, "start"))
    if end is not None:
        rows = rows.filter(pc.field("at") < _aware(end, "end"))
    if kind is not None:
        if kind not in EVENT_KINDS:
            raise InvalidInput(f"no event kind {kind!r}; the kinds are {', '.join(EVENT_KINDS)}")
        rows = rows.filter(pc.field("kind") == kind)
    return rows.sort_by([("at", "ascending"), ("recorded_at", "ascending")])


def event_history(record: Record, event_id: str) -> pa.Table:
    """Return every row of an event's chain: the original, its corrections, a retraction."""
    rows = record.read_visible("events")
    ids = rows.column("event_id").to_pylist()
    parents = dict(zip(ids, rows.column("supersedes").to_pylist(), strict=True))
    if event_id not in parents:
        raise UnknownEvent(event_id)
    children = {parent: child for child, parent in parents.items() if parent is not None}
    root = event_id
    for _ in ids:  # bounded: a cycle could only come from damaged data
        if parents[root] is None or parents[root] not in parents:
            break
        root = str(parents[root])
    chain = [root]
    while chain[-1] in children and len(chain) <= len(ids):
        chain.append(children[chain[-1]])
    position = {event: index for index, event in enumerate(ids)}
    return rows.take([position[event] for event in chain])


def _row(event: EventInput, now: datetime, supersedes: str | None = None) -> dict[str, Any]:
    return {
        **event.model_dump(),
        "at": event.at.astimezone(UTC),
        "recorded_at": now,
        "supersedes": supersedes,
        "retracted": False,
    }


def _write(record: Record, rows: list[dict[str, Any]], ids: list[str] | None = None) -> list[str]:
    ids = ids or [uuid.uuid4().hex for _ in rows]
    table = record.table("events")
    rows = [{**row, "event_id": event_id} for row, event_id in zip(rows, ids, strict=True)]
    table.add(pa.Table.from_pylist(rows, schema=table.schema))
    return ids


def _reopened(withdrawn: dict[str, Any]) -> set[str]:
    """Return the animal a withdrawn event may reactivate: the one of a death or sale."""
    return {withdrawn["animal_id"]} if withdrawn["kind"] in DEPARTURES else set()


def _owe_relinks(record: Record, changes: Sequence[tuple[str, str, datetime]]) -> None:
    """Note the pen-days a departure or move changes (from its day on) for the next link run:
    recorded late, it says who could be seen on days already linked."""
    since: dict[str, datetime] = {}
    for animal_id, kind, at in changes:
        if kind in (*DEPARTURES, "move"):
            since[animal_id] = min(at, since.get(animal_id, at))
    for animal_id, at in sorted(since.items()):
        owe_relink(record, animal_id, at.astimezone(UTC).date())


def _follow_events(record: Record, animal_ids: set[str], reopen: set[str]) -> None:
    """Bring the animals' pen, birth date and status in line with their events in force.

    An animal in `reopen` lost a death or sale; without another one it is active again.
    """
    table = record.table("animals")
    animals = (
        table.to_lance()
        .to_table(filter=pc.is_in(pc.field("animal_id"), pa.array(sorted(animal_ids))))
        .to_pylist()
    )
    events = (
        current_events(record)
        .filter(pc.is_in(pc.field("animal_id"), pa.array(sorted(animal_ids))))
        .to_pylist()
    )
    by_animal: dict[str, list[dict[str, Any]]] = {}
    for event in events:  # once: a per-animal scan was quadratic in a herd's import
        by_animal.setdefault(event["animal_id"], []).append(event)
    changed = []
    for animal in animals:
        if animal["status"] == "merged":
            continue
        mine = by_animal.get(animal["animal_id"], [])
        updated = _animal_after(animal, mine, animal["animal_id"] in reopen)
        if updated != animal:
            changed.append(updated)
    if changed:
        rows = pa.Table.from_pylist(changed, schema=table.schema)
        table.merge_insert("animal_id").when_matched_update_all().execute(rows)


def _animal_after(
    animal: dict[str, Any], events: list[dict[str, Any]], reopen: bool
) -> dict[str, Any]:
    """Return a copy of the animal's row that follows its events in force, oldest first."""
    updated = dict(animal)
    moves = [e for e in events if e["kind"] == "move"]
    births = [e for e in events if e["kind"] == "birth"]
    if moves:
        updated["pen_id"] = moves[-1]["code"]
    if births:
        updated["birth_date"] = births[-1]["at"].date()
    if any(e["kind"] in DEPARTURES for e in events):
        updated["status"] = "departed"
    elif reopen and animal["status"] == "departed":
        updated["status"] = "active"
    return updated


def _in_force_rows(record: Record) -> pa.Table:
    rows = record.read_visible("events")
    superseded = pc.drop_null(rows.column("supersedes"))
    retracted = pc.fill_null(rows.column("retracted"), False)
    keep = pc.and_(
        pc.invert(pc.is_in(rows.column("event_id"), value_set=superseded)), pc.invert(retracted)
    )
    return rows.filter(keep)


def _row_of(record: Record, event_id: str) -> dict[str, Any]:
    rows = record.read_visible("events").filter(pc.field("event_id") == event_id).to_pylist()
    if not rows:
        raise UnknownEvent(event_id)
    row: dict[str, Any] = rows[0]
    return row


def _in_force(record: Record, event_id: str) -> dict[str, Any]:
    """Return the event's row; raise when it is unknown, superseded or a retraction."""
    row = _row_of(record, event_id)
    if row["retracted"]:
        raise InvalidInput(f"{event_id} is a retraction; record the event again instead")
    later = record.read_visible("events").filter(pc.field("supersedes") == event_id).to_pylist()
    if later:
        raise EventSuperseded(event_id, later[0]["event_id"], bool(later[0]["retracted"]))
    return row


def _merged_into(record: Record, animal_id: str) -> list[str]:
    """Return the animal's id and every id merged into it, directly or through another."""
    rows = record.dataset("animals").to_table(columns=["animal_id", "merged_into"])
    ids = rows.column("animal_id").to_pylist()
    parent = dict(zip(ids, rows.column("merged_into").to_pylist(), strict=True))
    if animal_id not in parent:
        raise UnknownAnimal(animal_id)

    def reaches(candidate: str | None) -> bool:
        seen: set[str] = set()  # guards against a merge cycle in damaged data
        while candidate is not None and candidate not in seen:
            if candidate == animal_id:
                return True
            seen.add(candidate)
            candidate = parent.get(candidate)
        return False

    return [candidate for candidate in ids if reaches(candidate)]


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else _aware(now, "now").astimezone(UTC)


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} {moment:%Y-%m-%d %H:%M} has no time zone; give one")
    return moment
