"""Commands about health and production events: add, import, list, correct, retract."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, open_from_cli
from herdrecord.errors import InvalidInput
from herdrecord.events.csv_import import import_events_csv
from herdrecord.events.rules import EVENT_KINDS, describe_event, parse_event
from herdrecord.events.store import (
    add_events,
    amended_event,
    correct_event,
    current_events,
    retract_event,
)

event_app = typer.Typer(
    help="Record health and production events: lameness, treatments, weights, moves ...",
    no_args_is_help=True,
)
app.add_typer(event_app, name="event")

EventId = Annotated[str, typer.Argument(help="Id of the event.", show_default=False)]
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
    animal: Annotated[str, typer.Option(help="Animal id.", show_default=False)],
    kind: Annotated[
        str, typer.Option(help=f"Kind of event: {', '.join(EVENT_KINDS)}.", show_default=False)
    ],
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
    """Record one event (at defaults to now) and print its id."""
    given = _given(
        animal_id=animal,
        kind=kind,
        at=at or datetime.now(UTC),
        author=_author(author),
        value=value,
        scale=scale,
        code=code,
        note=note,
        unit=unit,
        result=result,
        withdrawal_days=withdrawal_days,
    )
    event_ids = add_events(open_from_cli(path), [parse_event(given)])
    console.print(event_ids[0], highlight=False)


@event_app.command("import")
def event_import(
    path: RecordPath,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV file, UTF-8, with a header: animal_id, kind, at, author and any of value, "
            "scale, code, note, unit, result, withdrawal_days. Empty cells are empty.",
            show_default=False,
        ),
    ],
) -> None:
    """Store every event of a CSV file, or none of them if any row is wrong."""
    event_ids = import_events_csv(open_from_cli(path), file)
    console.print(f"stored {len(event_ids)} events from {file}", highlight=False)


@event_app.command("list")
def event_list(
    path: RecordPath,
    animal: Annotated[str | None, typer.Option(help="Only this animal's events.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only events of this kind.")] = None,
) -> None:
    """List the events in force (corrected and retracted ones left out), oldest first."""
    rows = current_events(open_from_cli(path), animal_id=animal, kind=kind).to_pylist()
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
    console.print(table)


@event_app.command("correct")
def event_correct(
    path: RecordPath,
    event_id: EventId,
    animal: Annotated[str | None, typer.Option(help="Animal id, if it was the wrong one.")] = None,
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
    changes = _given(
        animal_id=animal,
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
    record = open_from_cli(path)
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


def _given(**options: Any) -> dict[str, Any]:
    return {name: value for name, value in options.items() if value is not None}


def _author(author: str | None) -> str:
    if author is not None:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise InvalidInput("cannot tell who you are from the system; pass --author NAME") from None
