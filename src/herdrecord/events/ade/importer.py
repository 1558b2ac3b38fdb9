"""Import of ICAR ADE event collections: every event of every file given, or none of them.

A file is one ADE collection (`{"member": [...]}`) of any of the event resources in
`forms.FORMS`, mixed or not. Each event is checked against its resource's JSON Schema, then
mapped onto the record's events; every problem is named by its file and JSON path
(`diagnoses.json: $.member[3].eventDateTime: 'yesterday' is not a 'date-time'`) and nothing
is stored while any remains. An event names its animal by an (scheme, id) pair: the scheme
`org.herdrecord.animal` gives the record's animal id, any other scheme an ear tag or RFID
the record links to an animal. Attention events and the cameras' gait measures, which a
record derives from its days, are left out (counted); so are the record's own events read
back from its export, as duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from herdrecord.errors import InvalidInput
from herdrecord.events.ade.forms import FORMS, Context, Unmappable, is_derived
from herdrecord.events.ade.mapping import ANIMAL_SCHEME, SOURCE, event_columns, key_source
from herdrecord.events.ade.validation import schema_problems
from herdrecord.events.identifiers import TAG_SCHEME, IdentifierIndex, identifier_index
from herdrecord.events.rules import EventInput, EventsRejected, parse_event
from herdrecord.events.store import EventDuplicate, EventsRecorded, add_labelled_events
from herdrecord.store.record import Record


@dataclass(frozen=True)
class AdeImported:
    """What an ADE import did."""

    recorded: EventsRecorded  # the events stored, and the repeats left out
    derived: int  # attention events and gait measures left out: a record derives its own
    files: int


@dataclass(frozen=True)
class AdeDocument:
    """One ADE file as read: its name (for problems) and its bytes."""

    name: str
    data: bytes


def ade_files(path: Path) -> list[Path]:
    """Return the ADE files at `path`: the file itself, or a folder's *.json files."""
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise InvalidInput(f"{path}: no .json files in this folder")
        return files
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    return [path]


def import_ade_files(
    record: Record, paths: Sequence[Path], *, now: datetime | None = None
) -> AdeImported:
    """Store every event of the ADE files (or folders of them) or none of them."""
    documents = []
    for path in paths:
        for file in ade_files(path):
            try:
                documents.append(AdeDocument(str(file), file.read_bytes()))
            except OSError as exc:
                raise InvalidInput(f"{file}: cannot be read ({exc.strerror})") from None
    return import_ade_documents(record, documents, now=now)


def import_ade_documents(
    record: Record, documents: Sequence[AdeDocument], *, now: datetime | None = None
) -> AdeImported:
    """Store every event of the ADE documents or none of them; repeats (by their ADE
    source and id) are reported as duplicates, not stored."""
    reader = _Reader(record)
    for document in documents:
        reader.read(document)
    if not reader.events and not reader.problems and not reader.derived:
        raise InvalidInput("no ADE events in " + ", ".join(d.name for d in documents))
    fresh, own = _own_events(record, reader.events)
    recorded = add_labelled_events(record, fresh, reader.problems, now=now)
    duplicates = sorted((*own, *recorded.duplicates), key=lambda d: d.position)
    return AdeImported(
        EventsRecorded(recorded.event_ids, tuple(duplicates)), reader.derived, len(documents)
    )


def _own_events(
    record: Record, events: Sequence[tuple[int, str, EventInput]]
) -> tuple[list[tuple[int, str, EventInput]], list[EventDuplicate]]:
    """Split off the events this record wrote itself (source org.herdrecord, the id of one
    of its events): its own export read back is a repeat, not news."""
    rows = record.read_visible("events", ["event_id", "supersedes"])
    ids = set(rows.column("event_id").to_pylist())
    withdrawn = set(rows.column("supersedes").to_pylist())
    fresh, own = [], []
    for position, label, event in events:
        source = key_source(event.event_key)
        if source is not None and source[0] == SOURCE and source[1] in ids:
            own.append(EventDuplicate(position, label, source[1], True, source[1] in withdrawn))
        else:
            fresh.append((position, label, event))
    return fresh, own


class _Reader:
    """The events and problems of the documents read so far, numbered in reading order."""

    def __init__(self, record: Record) -> None:
        self._record = record
        self._limit = record.settings.max_event_rows
        self._names: IdentifierIndex | None = None
        animals = (
            record.dataset("animals")
            .to_table(columns=["animal_id", "species", "pen_id"])
            .to_pylist()
        )
        self._animals = {a["animal_id"]: Context(a["species"], a["pen_id"]) for a in animals}
        self.events: list[tuple[int, str, EventInput]] = []
        self.problems: list[tuple[int, str]] = []
        self.derived = 0
        self._position = 0

    def read(self, document: AdeDocument) -> None:
        """Read one document's events and problems."""
        members = self._members(document)
        if members is None:
            return
        if self._position + len(members) > self._limit:
            raise InvalidInput(
                f"{document.name}: more than {self._limit:,} events in one import; split the "
                "file, or raise HERDRECORD_MAX_EVENT_ROWS"
            )
        for index, item in enumerate(members):
            self._position += 1
            self._item(document.name, f"$.member[{index}]", item)

    def _members(self, document: AdeDocument) -> list[Any] | None:
        try:
            collection = json.loads(document.data)
        except UnicodeDecodeError:
            self._refuse(document.name, "not UTF-8 text")
            return None
        except ValueError as exc:
            self._refuse(document.name, f"not JSON ({exc})")
            return None
        if not isinstance(collection, dict) or not isinstance(collection.get("member"), list):
            self._refuse(document.name, '$: give an ADE collection, {"member": [...]}')
            return None
        problems = schema_problems(
            {k: v for k, v in collection.items() if k != "member"},
            "collections",
            "icarResourceCollection",
        )
        if problems:
            for problem in problems:
                self._refuse(document.name, problem)
            return None
        members: list[Any] = collection["member"]
        return members

    def _refuse(self, name: str, problem: str) -> None:
        self._position += 1
        self.problems.append((self._position, f"{name}: {problem}"))

    def _item(self, name: str, path: str, item: Any) -> None:
        label = f"{name}: {path}: "
        problems = self._item_problems(path, item)
        if problems:
            self.problems += [(self._position, f"{name}: {p}") for p in problems]
            return
        if is_derived(item):
            self.derived += 1
            return
        try:
            animal_id, context = self._animal(item["animal"], _day_of(item))
            columns = event_columns(item, animal_id, context)
        except Unmappable as exc:
            self.problems.append((self._position, f"{name}: {path}{exc.where}: {exc.problem}"))
            return
        except LookupError as exc:
            self.problems.append((self._position, f"{name}: {path}.animal: {exc.args[0]}"))
            return
        try:
            self.events.append((self._position, label, parse_event(columns)))
        except EventsRejected as exc:
            self.problems += [(self._position, label + p) for p in exc.problems]

    def _item_problems(self, path: str, item: Any) -> list[str]:
        if not isinstance(item, dict):
            return [f"{path}: give an ADE event (an object)"]
        kind = item.get("resourceType")
        if not isinstance(kind, str) or (kind not in FORMS and not is_derived(item)):
            known = ", ".join(sorted(FORMS))
            return [f"{path}.resourceType: {kind!r} is not an ADE event herdrecord reads ({known})"]
        return schema_problems(item, "resources", f"{kind}Resource", path)

    def _animal(self, animal: Mapping[str, str], on: date | None) -> tuple[str, Context]:
        """Return the animal an ADE identifier named on the event's day, and what its events
        need of it: `org.herdrecord.animal` is the record's id, any other scheme one of
        the animal's identifiers (`herdrecord animals identify`; the ear tag is
        `org.herdrecord.tag`; a scheme the record has never heard of falls back to the
        tag, as files written before identifiers named tags under any scheme)."""
        scheme, identifier = animal["scheme"], animal["id"]
        if scheme == ANIMAL_SCHEME:
            return identifier, self._animals.get(identifier, Context(None, None))
        if self._names is None:
            self._names = identifier_index(self._record)
        try:
            animal_id = self._names.resolve(scheme, identifier, on)
        except InvalidInput as exc:
            try:
                animal_id = self._names.resolve(TAG_SCHEME, identifier, on)
            except InvalidInput:
                raise LookupError(
                    f"{exc} (or {ANIMAL_SCHEME}, which names an animal by its id)"
                ) from None
        return animal_id, self._animals[animal_id]


def _day_of(item: Mapping[str, Any]) -> date | None:
    """Return the UTC day of an ADE event's `eventDateTime`, None when it has none readable."""
    when = item.get("eventDateTime")
    if not isinstance(when, str):
        return None
    try:
        at = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).date()
