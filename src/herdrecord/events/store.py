"""Health and production events in the record: append-only rows, corrections, retractions.

The `events` table is append-only. A correction is a new row whose `supersedes` names the
event it replaces; a retraction is a new row with `retracted = true` superseding the event it
withdraws. The events in force are those that no row supersedes and that are not retractions.

Writing an event also updates the animal, following the events in force: the latest `move`
sets its pen, the latest `birth` its birth date, a `death` or `sale` departs it; when a
correction or retraction withdraws its last death or sale, a departed animal is active again.
With no move or birth left in force, the pen and birth date keep their last value. Times are
kept in UTC; a birth date is the UTC date of the birth.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

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


def record_problems(
    record: Record, events: Sequence[EventInput], *, now: datetime
) -> list[tuple[int, str]]:
    """Return (index, problem) for events the record cannot take: unknown, merged, time."""
    animals = {
        row["animal_id"]: row
        for row in record.table("animals")
        .to_lance()
        .to_table(columns=["animal_id", "status", "merged_into", "birth_date"])
        .to_pylist()
    }
    births = {e.animal_id: e.at.astimezone(UTC).date() for e in events if e.kind == "birth"}
    return [
        (index, problem)
        for index, event in enumerate(events)
        for problem in _problems_with(event, animals.get(event.animal_id), births, now)
    ]


def _problems_with(
    event: EventInput, animal: dict[str, Any] | None, births: dict[str, date], now: datetime
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
    if event.kind != "birth" and born is not None and at.date() < born:
        problems.append(f"at: {at:%Y-%m-%d} is before {event.animal_id}'s birth date {born}")
    return problems


def add_events(
    record: Record, events: Sequence[EventInput], *, now: datetime | None = None
) -> list[str]:
    """Store the events all together or none of them; return their new event ids."""
    if not events:
        return []
    single = len(events) == 1
    labelled = [(i, "" if single else f"events[{i}]: ", e) for i, e in enumerate(events)]
    return add_labelled_events(record, labelled, now=now)


def add_labelled_events(
    record: Record,
    labelled: Sequence[tuple[int, str, EventInput]],
    problems: Sequence[tuple[int, str]] = (),
    *,
    now: datetime | None = None,
) -> list[str]:
    """Store (position, label, event)s all together or none of them; return their new ids.

    `problems` are those found before (rows that did not parse), by position and labelled;
    all are reported in position order, each problem of the record after its event's label.
    """
    now = _now(now)
    events = [event for _, _, event in labelled]
    with record.writer():
        found = list(problems)
        for index, problem in record_problems(record, events, now=now):
            position, label, _ = labelled[index]
            found.append((position, label + problem))
        if found:
            raise EventsRejected([p for _, p in sorted(found, key=lambda item: item[0])])
        ids = _write(record, [_row(event, now) for event in events])
        _follow_events(record, {event.animal_id for event in events}, set())
        _owe_relinks(record, [(e.animal_id, e.kind, e.at) for e in events])
        return ids


def amended_event(record: Record, event_id: str, changes: Mapping[str, object]) -> EventInput:
    """Return the stored event with `changes` applied, as input for `correct_event`.

    `changes` usually carries the author of the correction, who replaces the stored author.

    A change of kind keeps only the animal, time, author and note of the stored event: the
    other fields mean something else for another kind.
    """
    stored = _in_force(record, event_id)
    base = {name: stored[name] for name in EventInput.model_fields}
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


def _write(record: Record, rows: list[dict[str, Any]]) -> list[str]:
    ids = [uuid.uuid4().hex for _ in rows]
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
    changed = []
    for animal in animals:
        if animal["status"] == "merged":
            continue
        mine = [e for e in events if e["animal_id"] == animal["animal_id"]]
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
    rows = record.table("animals").to_lance().to_table(columns=["animal_id", "merged_into"])
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
