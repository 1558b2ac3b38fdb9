"""Import of health and production events from a CSV file: all of its rows, or none."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

from herdrecord.errors import InvalidInput
from herdrecord.events.identifiers import TAG_SCHEME, IdentifierIndex, identifier_index
from herdrecord.events.rules import EventInput, EventsRejected, parse_event
from herdrecord.events.store import EventsRecorded, add_labelled_events
from herdrecord.store.record import Record

CSV_COLUMNS = (
    "animal_id",
    "tag_id",
    "identifier_scheme",
    "identifier",
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
    "event_key",
)
CSV_REQUIRED = ("kind", "at", "author")  # and animal_id, tag_id or identifier


def import_events_csv(record: Record, path: Path, *, now: datetime | None = None) -> EventsRecorded:
    """Store every event of a CSV file (header row, empty cell = null) or none of them;
    rows that repeat events already recorded are reported as duplicates, not stored.

    Rows name their animal by `animal_id`, by `tag_id` (the ear tag or RFID a farm's
    management software knows it by), or by `identifier_scheme` and `identifier` (any
    identifier the animal carries, `herdrecord animals identify`), each resolved to the
    animal it named on the row's day."""
    return import_events_csv_data(record, _read_bytes(path), str(path), now=now)


def import_events_csv_data(
    record: Record, data: bytes, source: str, *, now: datetime | None = None
) -> EventsRecorded:
    """Store every event of CSV bytes read from `source` (a file name, or `-`) or none."""
    header, *rows = _csv_rows(_decode(data, source), source, record.settings.max_event_rows)
    names = _csv_header(header[1], source)
    if not rows:
        raise InvalidInput(f"{source}: no events below the header")
    names_animals = {"tag_id", "identifier", "identifier_scheme"} & set(names)
    index = identifier_index(record) if names_animals else None
    events: list[tuple[int, str, EventInput]] = []
    problems: list[tuple[int, str]] = []
    for ordinal, (line, cells) in enumerate(rows, start=1):
        label = f"row {ordinal} (line {line}): "
        if len(cells) != len(names):
            problems.append((ordinal, f"{label}{len(cells)} cells; the header has {len(names)}"))
            continue
        data_ = {name: cell.strip() or None for name, cell in zip(names, cells, strict=True)}
        tag = data_.pop("tag_id", None)
        scheme, identifier = data_.pop("identifier_scheme", None), data_.pop("identifier", None)
        if index is not None and data_.get("animal_id") is None:
            try:
                data_["animal_id"] = _named(index, tag, scheme, identifier, _day(data_.get("at")))
            except InvalidInput as exc:
                problems.append((ordinal, f"{label}{exc}"))
                continue
        try:
            events.append((ordinal, label, parse_event(data_)))
        except EventsRejected as exc:
            problems += [(ordinal, label + p) for p in exc.problems]
    return add_labelled_events(record, events, problems, now=now)


def _named(
    index: IdentifierIndex,
    tag: str | None,
    scheme: str | None,
    identifier: str | None,
    day: date | None,
) -> str | None:
    """Return the animal a row names by its tag or identifier on `day` (None: neither)."""
    if (scheme is None) != (identifier is None):
        raise InvalidInput("identifier: give both identifier_scheme and identifier, or neither")
    if scheme is not None and identifier is not None:
        try:
            return index.resolve(scheme, identifier, day)
        except InvalidInput as exc:
            raise InvalidInput(f"identifier: {exc}") from None
    if tag is not None:
        try:
            return index.resolve(TAG_SCHEME, tag, day)
        except InvalidInput:
            raise InvalidInput(f"tag_id: no animal in the record carries {tag}") from None
    return None


def _day(at: str | None) -> date | None:
    """Return the UTC day of a row's `at`, None when it does not read (parse_event says so)."""
    if at is None:
        return None
    try:
        when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).date()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None


def _decode(data: bytes, source: str) -> str:
    if b"\x00" in data:
        raise InvalidInput(f"{source}: holds NUL bytes, so it is not a CSV text file")
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"{source}: not UTF-8 text (line {line}); save it as CSV UTF-8"
        ) from None


def _csv_rows(text: str, source: str, max_rows: int) -> list[tuple[int, list[str]]]:
    """Return (first line, cells) of every row that is not blank, the header first; refuse
    more than `max_rows` rows below the header before checking any."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    line = 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows.append((line, cells))
                if len(rows) > max_rows + 1:
                    raise InvalidInput(
                        f"{source}: more than {max_rows:,} events (line {line}); one import "
                        f"takes at most {max_rows:,} (HERDRECORD_MAX_EVENT_ROWS): split the file"
                    )
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"{source}: line {reader.line_num}: {exc}") from None
    if not rows:
        raise InvalidInput(f"{source}: empty; the first row must name the columns")
    return rows


def _csv_header(cells: list[str], path: str) -> list[str]:
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
    if not {"animal_id", "tag_id", "identifier"} & set(header):
        missing.insert(0, "animal_id (or tag_id, or identifier_scheme and identifier)")
    if missing:
        raise InvalidInput(f"{path}: the header lacks the column(s) {', '.join(missing)}")
    return header
