"""Commands about health and production events: add, import, list, correct, retract."""

from __future__ import annotations

import getpass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, errors, open_from_cli
from herdrecord.cli.rows import ListFormat, ListFormatOption, print_listing
from herdrecord.errors import InvalidInput
from herdrecord.events.ade.importer import (
    AdeDocument,
    AdeImported,
    import_ade_documents,
    import_ade_files,
)
from herdrecord.events.csv_import import CSV_COLUMNS, import_events_csv, import_events_csv_data
from herdrecord.events.identifiers import animal_by_identifier
from herdrecord.events.rules import EVENT_KINDS, describe_event, parse_event
from herdrecord.events.store import (
    add_events,
    amended_event,
    correct_event,
    current_events,
    retract_event,
)
from herdrecord.events.tags import animal_with_tag
from herdrecord.store.record import Record

event_app = typer.Typer(
    help="Record health and production events: lameness, treatments, weights, moves ...",
    no_args_is_help=True,
)
app.add_typer(event_app, name="event")

MAX_ROWS_NAMED = 20  # duplicate rows named in an import's summary; the rest are counted

EventId = Annotated[str, typer.Argument(help="Id of the event.", show_default=False)]
AnimalOption = Annotated[
    str | None, typer.Option(help="Animal id (or name it by --tag).", show_default=False)
]
TagOption = Annotated[
    str | None,
    typer.Option(help="Ear tag or RFID of the animal, instead of --animal.", show_default=False),
]
IdentifierOption = Annotated[
    str | None,
    typer.Option(
        help="Any identifier of the animal as SCHEME:ID (eu.animalId:276000312312345, "
        "managementTag:1042), as it held on the event's day; instead of --animal.",
        show_default=False,
    ),
]
Kind = Annotated[str | None, typer.Option(help=f"Kind of event: {', '.join(EVENT_KINDS)}.")]
Value = Annotated[
    float | None,
    typer.Option(help="Score, kg, dose, total born or weaned, depending on the kind."),
]
Scale = Annotated[str | None, typer.Option(help="Scale of a lameness score: 0-3 or 1-5.")]
Code = Annotated[
    str | None, typer.Option(help="Diagnosis, product, destination pen, AI/natural, cause ...")
]
At = Annotated[
    str | None, typer.Option(help="When it happened, with a time zone, e.g. 2026-11-21T06:00Z.")
]
Author = Annotated[
    str | None, typer.Option(help="Who records it (default: your user name).", show_default=False)
]
Note = Annotated[str | None, typer.Option(help="Free text.")]
Unit = Annotated[
    str | None, typer.Option(help="Unit of the value: ml, mg/kg ... (kg for weights).")
]
Result = Annotated[
    str | None, typer.Option(help="positive/negative (pregnancy check); born alive (farrowing).")
]
WithdrawalDays = Annotated[
    float | None, typer.Option(help="Withdrawal period of a treatment, days.")
]


@event_app.command("add")
def event_add(
    path: RecordPath,
    kind: Annotated[
        str, typer.Option(help=f"Kind of event: {', '.join(EVENT_KINDS)}.", show_default=False)
    ],
    animal: AnimalOption = None,
    tag: TagOption = None,
    identifier: IdentifierOption = None,
    value: Value = None,
    scale: Scale = None,
    code: Code = None,
    at: At = None,
    author: Author = None,
    note: Note = None,
    unit: Unit = None,
    result: Result = None,
    withdrawal_days: WithdrawalDays = None,
    event_key: Annotated[
        str | None,
        typer.Option(help="Your own id of the event: adding it again stores nothing."),
    ] = None,
) -> None:
    """Record one event (at defaults to now) and print its id; an event recorded before
    (the same key, or the same animal, kind, time and values) prints that event's id."""
    record = open_from_cli(path)
    when = at or datetime.now(UTC)
    given = _given(
        animal_id=_animal(record, animal, tag, required=True, identifier=identifier, at=when),
        kind=kind,
        at=when,
        author=_author(author),
        value=value,
        scale=scale,
        code=code,
        note=note,
        unit=unit,
        result=result,
        withdrawal_days=withdrawal_days,
        event_key=event_key,
    )
    recorded = add_events(record, [parse_event(given)])
    for duplicate in recorded.duplicates:
        errors.print(f"already recorded: {duplicate.describe()}", highlight=False)
        console.print(duplicate.event_id, highlight=False)
    for event_id in recorded.event_ids:
        console.print(event_id, highlight=False)


@event_app.command("import")
def event_import(
    path: RecordPath,
    file: Annotated[
        str,
        typer.Argument(
            help="CSV file (UTF-8, a header row; - reads standard input). Columns: "
            f"{', '.join(CSV_COLUMNS)}. Each row needs kind, at (with a time zone) and "
            "author, and names its animal by animal_id or by tag_id (the ear tag); the others "
            "are filled as the kind needs (see `event add --help`). Empty cells are empty."
            " An ICAR ADE event collection (a .json file, a folder of them, or JSON on standard "
            "input) is read as ADE: see docs/icar-ade.md.",
            show_default=False,
        ),
    ],
) -> None:
    """Store every event of a CSV file, or none of them if any row is wrong; rows that
    repeat events already recorded are counted as duplicates and not stored again."""
    record = open_from_cli(path)
    stdin = typer.get_binary_stream("stdin").read() if file == "-" else None
    if stdin is not None and stdin.lstrip()[:1] == b"{":
        _print_ade_import(import_ade_documents(record, [AdeDocument("-", stdin)]), "standard input")
        return
    if stdin is None and (file.lower().endswith(".json") or Path(file).is_dir()):
        _print_ade_import(import_ade_files(record, [Path(file)]), file)
        return
    if stdin is not None:
        recorded = import_events_csv_data(record, stdin, "-")
    else:
        recorded = import_events_csv(record, Path(file))
    source = "standard input" if file == "-" else file
    summary = f"stored {len(recorded.event_ids)} events from {source}"
    if recorded.duplicates:
        rows = ", ".join(str(d.position) for d in recorded.duplicates[:MAX_ROWS_NAMED])
        more = len(recorded.duplicates) - MAX_ROWS_NAMED
        summary += (
            f"; {len(recorded.duplicates)} duplicates of events already recorded, not stored "
            f"(rows {rows}{f' and {more} more' if more > 0 else ''})"
        )
    console.print(summary, highlight=False, soft_wrap=True)


def _print_ade_import(imported: AdeImported, source: str) -> None:
    recorded = imported.recorded
    summary = f"stored {len(recorded.event_ids)} events from {source}"
    if recorded.duplicates:
        named = ", ".join(d.label.rstrip(": ") for d in recorded.duplicates[:MAX_ROWS_NAMED])
        more = len(recorded.duplicates) - MAX_ROWS_NAMED
        summary += (
            f"; {len(recorded.duplicates)} duplicates of events already recorded, not stored "
            f"({named}{f' and {more} more' if more > 0 else ''})"
        )
    if imported.derived:
        summary += (
            f"; {imported.derived} attention events and gait scores left out (a record "
            "derives its own from its days)"
        )
    console.print(summary, highlight=False, soft_wrap=True)


@event_app.command("list")
def event_list(
    path: RecordPath,
    animal: Annotated[str | None, typer.Option(help="Only this animal's events.")] = None,
    tag: Annotated[
        str | None, typer.Option(help="Only the events of the animal with this ear tag.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Only events of this kind.")] = None,
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """List the events in force (corrected and retracted ones left out), oldest first."""
    record = open_from_cli(path)
    animal_id = _animal(record, animal, tag, required=False)
    events = current_events(record, animal_id=animal_id, kind=kind)
    print_listing(events, output_format, lambda: console.print(_events_table(events.to_pylist())))


def _events_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} events")
    for column in ("at (UTC)", "animal", "kind"):
        table.add_column(column, no_wrap=True)
    table.add_column("details")
    table.add_column("by")
    table.add_column("event id", overflow="fold")  # folds, never cut, in a narrow terminal
    for row in rows:
        table.add_row(
            f"{row['at']:%Y-%m-%d %H:%M}",
            row["animal_id"],
            row["kind"],
            describe_event(row),
            row["author"],
            row["event_id"],
        )
    return table


@event_app.command("correct")
def event_correct(
    path: RecordPath,
    event_id: EventId,
    animal: Annotated[str | None, typer.Option(help="Animal id, if it was the wrong one.")] = None,
    tag: Annotated[
        str | None, typer.Option(help="Ear tag of the right animal, if it was the wrong one.")
    ] = None,
    kind: Kind = None,
    value: Value = None,
    scale: Scale = None,
    code: Code = None,
    at: At = None,
    author: Author = None,
    note: Note = None,
    unit: Unit = None,
    result: Result = None,
    withdrawal_days: WithdrawalDays = None,
) -> None:
    """Replace an event by a corrected copy (given options change it) and print the new id."""
    record = open_from_cli(path)
    changes = _given(
        animal_id=_animal(record, animal, tag, required=False),
        kind=kind,
        at=at,
        author=_author(author),
        value=value,
        scale=scale,
        code=code,
        note=note,
        unit=unit,
        result=result,
        withdrawal_days=withdrawal_days,
    )
    new_id = correct_event(record, event_id, amended_event(record, event_id, changes))
    console.print(new_id, highlight=False)


@event_app.command("retract")
def event_retract(
    path: RecordPath,
    event_id: EventId,
    reason: Annotated[str, typer.Option(help="Why the event is withdrawn.", show_default=False)],
    author: Author = None,
) -> None:
    """Withdraw an event recorded in error (it stays in the record's history)."""
    retract_event(open_from_cli(path), event_id, _author(author), reason)
    console.print(f"retracted {event_id}", highlight=False)


def _animal(
    record: Record,
    animal: str | None,
    tag: str | None,
    *,
    required: bool,
    identifier: str | None = None,
    at: datetime | str | None = None,
) -> str | None:
    """Return the animal named by --animal, --tag or --identifier (one of them when
    `required`); an identifier names the animal it named on the day of `at`."""
    if animal is not None and tag is not None:
        raise InvalidInput("name the animal by --animal or by --tag, not both")
    if identifier is not None and (animal is not None or tag is not None):
        raise InvalidInput("name the animal one way: --animal, --tag or --identifier")
    if identifier is not None:
        scheme, sep, value = identifier.partition(":")
        if not sep:
            raise InvalidInput(
                f"--identifier {identifier!r}: give SCHEME:ID, e.g. eu.animalId:276000312312345"
            )
        return animal_by_identifier(record, scheme, value, _day_of(at))
    if tag is not None:
        return animal_with_tag(record, tag)
    if animal is None and required:
        raise InvalidInput("name the animal: --animal ID or --tag TAG")
    return animal


def _day_of(at: datetime | str | None) -> date | None:
    if isinstance(at, datetime):
        return at.astimezone(UTC).date() if at.tzinfo else at.date()
    if isinstance(at, str):
        try:
            return _day_of(datetime.fromisoformat(at.replace("Z", "+00:00")))
        except ValueError:
            return None  # parse_event says what is wrong with it
    return None


def _given(**options: Any) -> dict[str, Any]:
    return {name: value for name, value in options.items() if value is not None}


def _author(author: str | None) -> str:
    if author is not None:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise InvalidInput("cannot tell who you are from the system; pass --author NAME") from None
