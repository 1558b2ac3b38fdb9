"""Health and production events: validated input, append-only rows, corrections, CSV import.

The `events` table is append-only. A correction is a new row whose `supersedes` names the
event it replaces; a retraction is a new row with `retracted = true` superseding the event it
withdraws. The events in force are those that no row supersedes and that are not retractions.

What `value`, `unit` and `result` mean depends on the kind:

- `lameness`: value = whole score within `scale` ("0-3": pigs, Zinpro; dairy, AHDB;
  "1-5": Sprecher), unit "score".
- `weight`: value = kg, 0 < kg < 2000, unit "kg".
- `treatment`: code = product; value = dose > 0 with its unit (ml, mg/kg ...);
  withdrawal_days >= 0.
- `farrowing`, `calving`: value = total born, unit "head"; result = born alive as a whole
  number in decimal text ("11"), at most the total (stillborn = total - born alive).
- `weaning`: value = young weaned, unit "head".
- `pregnancy_check`: result = positive or negative.
- `diagnosis`: code = condition (PRRS, MHYO ...); `insemination`: code = AI, natural ...;
  `move`: code = destination pen id; `death`: code = cause; `note`: note required.

Writing an event also updates the animal, following the events in force: the latest `move`
sets its pen, the latest `birth` its birth date, a `death` or `sale` departs it; when a
correction or retraction withdraws its last death or sale, a departed animal is active again.
With no move or birth left in force, the pen and birth date keep their last value. Times are
kept in UTC; a birth date is the UTC date of the birth.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from herdrecord.contract import IDENTIFIER_PATTERN, Identifier
from herdrecord.errors import HerdrecordError, InvalidInput
from herdrecord.review import UnknownAnimal
from herdrecord.store import Record

EventKind = Literal[
    "lameness",
    "diagnosis",
    "treatment",
    "weight",
    "oestrus",
    "insemination",
    "pregnancy_check",
    "farrowing",
    "calving",
    "weaning",
    "abortion",
    "move",
    "birth",
    "death",
    "sale",
    "note",
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
LamenessScale = Literal["0-3", "1-5"]

FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks of phones and scales drift a little
MAX_KG = 2000.0  # heavier than any bull: a typo or a unit mix-up
MAX_LITTER = 50  # above any recorded litter
MAX_WITHDRAWAL_DAYS = 1000.0
MAX_PROBLEMS_SHOWN = 50
MAX_NOTE_CHARS = 2000
DEPARTURES = ("death", "sale")  # kinds that take an animal off the farm

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Author = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=_PRINTABLE)
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_PRINTABLE)
]
Note = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NOTE_CHARS)
]

# Which optional columns each kind uses; a column a kind does not use must stay empty
# (a filled one is usually a shifted CSV cell or the wrong kind). `note` suits every kind.
_USES: dict[str, dict[str, str]] = {
    "lameness": {"scale": "required", "value": "required", "unit": "optional"},
    "diagnosis": {"code": "required", "result": "optional"},
    "treatment": {
        "code": "required",
        "value": "optional",
        "unit": "optional",
        "withdrawal_days": "optional",
    },
    "weight": {"value": "required", "unit": "optional"},
    "oestrus": {},
    "insemination": {"code": "optional"},
    "pregnancy_check": {"result": "required", "code": "optional"},
    "farrowing": {"value": "required", "unit": "optional", "result": "optional"},
    "calving": {"value": "required", "unit": "optional", "result": "optional"},
    "weaning": {"value": "required", "unit": "optional"},
    "abortion": {},
    "move": {"code": "required"},
    "birth": {},
    "death": {"code": "optional"},
    "sale": {"code": "optional"},
    "note": {"note": "required"},
}
_FIXED_UNIT = {
    "lameness": "score",
    "weight": "kg",
    "farrowing": "head",
    "calving": "head",
    "weaning": "head",
}
_WHAT = {
    ("lameness", "scale"): "0-3 (pigs: Zinpro; dairy: AHDB) or 1-5 (Sprecher)",
    ("lameness", "value"): "the score",
    ("diagnosis", "code"): "the condition, e.g. PRRS or MHYO",
    ("treatment", "code"): "the product given",
    ("weight", "value"): "the weight in kg",
    ("pregnancy_check", "result"): "positive or negative",
    ("farrowing", "value"): "the total born",
    ("calving", "value"): "the total born",
    ("weaning", "value"): "the number weaned",
    ("move", "code"): "the destination pen id",
    ("note", "note"): "the text of the note",
}
_RULED_FIELDS = ("scale", "value", "unit", "code", "result", "withdrawal_days", "note")


class EventInput(BaseModel):
    """One health or production event as a person or a device reports it."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True
    )

    # Validated in this order; a field's kind rules may look at the fields before it.
    animal_id: Identifier
    kind: EventKind
    at: AwareDatetime
    author: Author
    scale: LamenessScale | None = None
    value: float | None = None
    unit: ShortText | None = None
    code: ShortText | None = None
    result: ShortText | None = None
    withdrawal_days: float | None = None
    note: Note | None = None

    @field_validator(*_RULED_FIELDS)
    @classmethod
    def _fits_kind(cls, given: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself is invalid and says so
            return given
        field = str(info.field_name)
        use = _USES[kind].get(field, "optional" if field == "note" else None)
        if given is None and field == "unit" and use is not None:
            given = _FIXED_UNIT.get(kind)
        if given is None:
            if use == "required":
                what = _WHAT.get((kind, field), "")
                raise _rule(f"required for {kind} events" + (f": {what}" if what else ""))
            if field == "unit" and kind == "treatment" and info.data.get("value") is not None:
                raise _rule("give the dose's unit, e.g. ml or mg/kg")
            return None
        if use is None:
            raise _rule(f"not used by {kind} events")
        return _CHECKS.get(field, _unchecked)(kind, given, info.data)


def _rule(problem: str) -> PydanticCustomError:
    return PydanticCustomError("event_rule", "{problem}", {"problem": problem})


def _unchecked(kind: str, given: Any, data: dict[str, Any]) -> Any:
    return given


def _check_value(kind: str, value: float, data: dict[str, Any]) -> float:
    if kind == "lameness":
        scale = data.get("scale")
        low, high = (0, 3) if scale == "0-3" else (1, 5)
        if not value.is_integer():
            raise _rule(f"lameness score {value:g} is not a whole number")
        if scale is not None and not low <= value <= high:
            raise _rule(f"lameness score {value:g} is outside scale {scale}")
    elif kind == "weight" and not 0 < value < MAX_KG:
        raise _rule(f"weight {value:g} kg is outside 0 < kg < {MAX_KG:g}")
    elif kind == "treatment" and value <= 0:
        raise _rule(f"dose {value:g} must be above 0")
    elif kind in ("farrowing", "calving", "weaning") and not (
        value.is_integer() and 0 <= value <= MAX_LITTER
    ):
        raise _rule(f"{value:g} head: give a whole number from 0 to {MAX_LITTER}")
    return value


def _check_unit(kind: str, unit: str, data: dict[str, Any]) -> str:
    fixed = _FIXED_UNIT.get(kind)
    if fixed is not None and unit != fixed:
        raise _rule(f"{kind} values are kept in {fixed}, got {unit!r}")
    if kind == "treatment" and "value" in data and data["value"] is None:
        raise _rule(f"{unit!r} given without a dose value")
    return unit


def _check_code(kind: str, code: str, data: dict[str, Any]) -> str:
    if kind == "move" and not re.fullmatch(IDENTIFIER_PATTERN, code):
        raise _rule(f"pen id {code!r}: letters, digits and ._:/@+- only, no spaces")
    return code


def _check_result(kind: str, result: str, data: dict[str, Any]) -> str:
    if kind == "pregnancy_check":
        if result.lower() not in ("positive", "negative"):
            raise _rule(f"{result!r}: give positive or negative")
        return result.lower()
    if kind in ("farrowing", "calving"):
        if not re.fullmatch(r"[0-9]{1,3}", result):
            raise _rule(f"born alive {result!r}: give a whole number")
        total = data.get("value")
        if total is not None and int(result) > total:
            raise _rule(f"born alive {int(result)} is more than the {total:g} born in total")
        return str(int(result))
    return result


def _check_withdrawal(kind: str, days: float, data: dict[str, Any]) -> float:
    if not 0 <= days <= MAX_WITHDRAWAL_DAYS:
        raise _rule(f"{days:g} days is outside 0 to {MAX_WITHDRAWAL_DAYS:g}")
    return days


_CHECKS: dict[str, Any] = {
    "value": _check_value,
    "unit": _check_unit,
    "code": _check_code,
    "result": _check_result,
    "withdrawal_days": _check_withdrawal,
}


class EventsRejected(InvalidInput):
    """Events failed validation; nothing of them was stored."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"event rejected, nothing stored: {self.problems[0]}")
            return
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        rest = len(self.problems) - len(shown)
        lines = [f"{len(self.problems)} problems, nothing stored:", *(f"  {p}" for p in shown)]
        super().__init__("\n".join(lines + ([f"  ... and {rest} more"] if rest else [])))


class UnknownEvent(HerdrecordError):
    """No event with that id in the record."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"no event {event_id!r} in the record — `herdrecord event list` shows ids")


class EventSuperseded(HerdrecordError):
    """The event was already corrected or retracted; only the event in force can change."""

    def __init__(self, event_id: str, by: str, retracted: bool) -> None:
        self.event_id = event_id
        self.by = by
        what = "retracted" if retracted else f"corrected by {by}; change that one instead"
        super().__init__(f"event {event_id} was already {what}")


def parse_event(data: Mapping[str, object]) -> EventInput:
    """Return the event given as field -> value (text is parsed); raise EventsRejected."""
    try:
        return EventInput.model_validate(dict(data))
    except ValidationError as exc:
        raise EventsRejected(_problems_of(exc)) from None


def _problems_of(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "event"
        message, kind, given = item["msg"], item["type"], item.get("input")
        if kind == "timezone_aware":
            message = f"{given} has no time zone; write e.g. 2026-11-21T06:00Z or +01:00"
        elif kind.startswith("datetime"):
            message = f"{given!r} is not a time; write e.g. 2026-11-21T06:00Z"
        elif kind == "string_pattern_mismatch" and where == "animal_id":
            message = (
                f"{given!r}: letters, digits and ._:/@+- only, starting with one of the first two"
            )
        elif kind == "string_pattern_mismatch":
            message = f"{given!r}: control characters (newline, tab ...) are not allowed here"
        elif kind == "extra_forbidden":
            message = "not an event field"
        problems.append(f"{where}: {message}")
    return problems


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
    problems = []
    for index, event in enumerate(events):
        animal = animals.get(event.animal_id)
        at = event.at.astimezone(UTC)
        if animal is None:
            problems.append((index, f"animal_id: {UnknownAnimal(event.animal_id)}"))
            continue
        if animal["status"] == "merged":
            problems.append(
                (
                    index,
                    f"animal_id: {event.animal_id} was merged into {animal['merged_into']}; "
                    "record the event on that id",
                )
            )
        if at > now + FUTURE_TOLERANCE:
            problems.append(
                (
                    index,
                    f"at: {at:%Y-%m-%d %H:%M}Z is in the future (now {now:%Y-%m-%d %H:%M}Z); "
                    "check the date and its time zone",
                )
            )
        born: date | None = births.get(event.animal_id, animal["birth_date"])
        if event.kind != "birth" and born is not None and at.date() < born:
            problems.append(
                (index, f"at: {at:%Y-%m-%d} is before {event.animal_id}'s birth date {born}")
            )
    return problems


def add_events(
    record: Record, events: Sequence[EventInput], *, now: datetime | None = None
) -> list[str]:
    """Store the events all together or none of them; return their new event ids."""
    if not events:
        return []
    single = len(events) == 1
    labelled = [(i, "" if single else f"events[{i}]: ", e) for i, e in enumerate(events)]
    return _add(record, labelled, [], _now(now))


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
        return new_id


def retract_event(
    record: Record, event_id: str, author: str, reason: str, *, now: datetime | None = None
) -> str:
    """Withdraw an event in force (recorded in error); return the retraction's id."""
    now = _now(now)
    author, reason = author.strip(), reason.strip()
    if not author or not reason:
        raise InvalidInput("a retraction needs an author and a reason")
    if len(author) > 128 or len(reason) > MAX_NOTE_CHARS or not re.fullmatch(_PRINTABLE, author):
        raise InvalidInput(
            f"a retraction's author is one line of up to 128 characters and its reason up to "
            f"{MAX_NOTE_CHARS}"
        )
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


CSV_COLUMNS = (
    "animal_id",
    "kind",
    "at",
    "value",
    "scale",
    "code",
    "note",
    "author",
    "unit",
    "result",
    "withdrawal_days",
)
CSV_REQUIRED = ("animal_id", "kind", "at", "author")


def import_events_csv(record: Record, path: Path, *, now: datetime | None = None) -> list[str]:
    """Store every event of a CSV file (header row, empty cell = null) or none of them."""
    header, *rows = _csv_rows(_read_text(path), path)
    names = _csv_header(header[1], path)
    if not rows:
        raise InvalidInput(f"{path}: no events below the header")
    events: list[tuple[int, str, EventInput]] = []
    problems: list[tuple[int, str]] = []
    for ordinal, (line, cells) in enumerate(rows, start=1):
        label = f"row {ordinal} (line {line}): "
        if len(cells) != len(names):
            problems.append((ordinal, f"{label}{len(cells)} cells; the header has {len(names)}"))
            continue
        data = {name: cell.strip() or None for name, cell in zip(names, cells, strict=True)}
        try:
            events.append((ordinal, label, EventInput.model_validate(data)))
        except ValidationError as exc:
            problems += [(ordinal, label + p) for p in _problems_of(exc)]
    return _add(record, events, problems, _now(now))


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None
    if b"\x00" in data:
        raise InvalidInput(f"{path}: holds NUL bytes, so it is not a CSV text file")
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{path}: not UTF-8 text (line {line}); save it as CSV UTF-8") from None


def _csv_rows(text: str, path: Path) -> list[tuple[int, list[str]]]:
    """Return (first line, cells) of every row that is not blank."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    line = 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"{path}: line {reader.line_num}: {exc}") from None
    if not rows:
        raise InvalidInput(f"{path}: empty; the first row must name the columns")
    return rows


def _csv_header(cells: list[str], path: Path) -> list[str]:
    header = [cell.strip() for cell in cells]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise InvalidInput(
            f"{path}: unknown column(s) {', '.join(unknown)}; the columns are "
            f"{', '.join(CSV_COLUMNS)}"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise InvalidInput(f"{path}: column(s) {', '.join(repeated)} appear more than once")
    missing = [name for name in CSV_REQUIRED if name not in header]
    if missing:
        raise InvalidInput(f"{path}: the header lacks the column(s) {', '.join(missing)}")
    return header


def _add(
    record: Record,
    labelled: list[tuple[int, str, EventInput]],
    problems: list[tuple[int, str]],
    now: datetime,
) -> list[str]:
    """Check (position, label, event)s against the record; store all of them, or none.

    `problems` are those found before, by position; all are reported in position order.
    """
    events = [event for _, _, event in labelled]
    with record.writer():
        for index, problem in record_problems(record, events, now=now):
            position, label, _ = labelled[index]
            problems = [*problems, (position, label + problem)]
        if problems:
            raise EventsRejected([p for _, p in sorted(problems, key=lambda item: item[0])])
        ids = _write(record, [_row(event, now) for event in events])
        _follow_events(record, {event.animal_id for event in events}, set())
        return ids


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
        updated = dict(animal)
        moves = [e for e in mine if e["kind"] == "move"]
        births = [e for e in mine if e["kind"] == "birth"]
        if moves:
            updated["pen_id"] = moves[-1]["code"]
        if births:
            updated["birth_date"] = births[-1]["at"].date()
        if any(e["kind"] in DEPARTURES for e in mine):
            updated["status"] = "departed"
        elif animal["animal_id"] in reopen and animal["status"] == "departed":
            updated["status"] = "active"
        if updated != animal:
            changed.append(updated)
    if changed:
        rows = pa.Table.from_pylist(changed, schema=table.schema)
        table.merge_insert("animal_id").when_matched_update_all().execute(rows)


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
