"""`herdrecord animals` and `herdrecord history`: who is in the record, and every decision
about one of them. Apart from `review`, which imports linking (a second more to start)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from herdrecord.cli.common import Animal, RecordPath, app, console, open_from_cli
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    add_id_column,
    listing_rows,
    print_listing,
)
from herdrecord.errors import InvalidInput
from herdrecord.linking.audit import Decision, folded_history
from herdrecord.lookup.animals import (
    AnimalSummary,
    confirms_identity,
    find_animals,
    get_animal,
    identity_confirmation,
)

ANIMAL_COLUMNS = (
    "animal_id",
    "display_name",
    "tag_id",
    "pen_id",
    "status",
    "merged_into",
    "provisional",
    "days",
    "first_day",
    "last_day",
)


@app.command()
def animals(
    path: RecordPath,
    pen: Annotated[str | None, typer.Option(help="Only this pen.")] = None,
    status: Annotated[str | None, typer.Option(help="active, departed or merged.")] = None,
    search: Annotated[
        str | None, typer.Option(help="Part of the id, name or ear tag (any case).")
    ] = None,
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """List the record's animals, with the days each was seen."""
    found = find_animals(open_from_cli(path), pen, status, search)
    rows = listing_rows(ANIMAL_COLUMNS, [vars(animal) for animal in found])
    print_listing(rows, output_format, lambda: console.print(_animals_table(found)))


def _animals_table(found: list[AnimalSummary]) -> Table:
    table = ListingTable(title=f"{len(found)} animals")
    add_id_column(table, "animal")
    for column in ("name", "tag", "pen", "status", "provisional", "days", "last seen"):
        table.add_column(column, justify="right" if column == "days" else "left")
    for animal in found:
        table.add_row(
            animal.animal_id,
            animal.display_name or "",
            animal.tag_id or "",
            animal.pen_id or "",
            animal.status + (f" → {animal.merged_into}" if animal.merged_into else ""),
            "yes" if animal.provisional else "",
            str(animal.days),
            str(animal.last_day or ""),
        )
    return table


HISTORY_COLUMNS = (
    "decided_at",
    "first_decided_at",
    "times",
    "tracklet",
    "animal_id",
    "method",
    "decided_by",
    "score",
    "current",
    "confirms_identity",
)


@app.command(name="history")
def history_command(
    path: RecordPath,
    animal: Animal,
    limit: Annotated[
        int | None, typer.Option(help="Only the latest N decisions (after folding).", min=1)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only decisions at or after this day or time (UTC), e.g. 2026-11-21."),
    ] = None,
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """Show an animal's link decisions, the audit trail, oldest first; a decision repeated
    unchanged (each re-link writes it again) shows once, with how many times. When a tag read
    confirmed the animal's identity, a line says so and its link is marked."""
    record = open_from_cli(path)
    summary = get_animal(record, animal)
    every = folded_history(record, animal, _since(since))
    shown = every if limit is None else every[-limit:]
    rows = listing_rows(
        HISTORY_COLUMNS,
        [
            vars(d)
            | {
                "tracklet": str(d.tracklet),
                "confirms_identity": confirms_identity(summary, str(d.tracklet), d.current),
            }
            for d in shown
        ],
    )
    total = sum(d.times for d in every)
    note = f"{animal}: {len(every)} decisions ({total} with repeats)" + (
        f", the latest {len(shown)} shown" if len(shown) < len(every) else ""
    )
    confirmation = identity_confirmation(summary)
    if confirmation is not None:
        note += f"\n{animal}: {confirmation} ({summary.identity_confirmed_by})"
    print_listing(rows, output_format, lambda: console.print(_history_table(shown, summary)), note)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"--since {text!r}: expected a day or time, e.g. 2026-11-21 or 2026-11-21T06:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _history_table(decisions: list[Decision], animal: AnimalSummary) -> Table:
    table = ListingTable()
    table.add_column("decided at")
    add_id_column(table, "tracklet")
    for column in ("animal", "method", "by", "score", "times"):
        table.add_column(column, justify="right" if column in ("score", "times") else "left")
    table.add_column("current")
    for d in decisions:
        table.add_row(
            f"{d.decided_at:%Y-%m-%d %H:%M:%S}",
            str(d.tracklet),
            d.animal_id or "unknown",
            d.method
            + (
                " · identity confirmed"
                if confirms_identity(animal, str(d.tracklet), d.current)
                else ""
            ),
            d.decided_by,
            "" if d.score is None else f"{d.score:.3f}",
            "" if d.times == 1 else f"×{d.times}",
            "yes" if d.current else "",
        )
    return table
