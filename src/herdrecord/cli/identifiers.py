"""`herdrecord identifiers add|list`: the (scheme, id) pairs animals are known by."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.markup import escape

from herdrecord.cli.common import RecordPath, app, console, open_from_cli
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    add_id_column,
    listing_rows,
    print_listing,
)
from herdrecord.errors import InvalidInput
from herdrecord.events.identifiers import Identifier, add_identifier, identifiers

identifiers_app = typer.Typer(
    help="The identifiers animals are known by, as scheme and id (ICAR ADE): add, list.",
    no_args_is_help=True,
)
app.add_typer(identifiers_app, name="identifiers")

COLUMNS = ("animal_id", "scheme", "id", "valid_from", "valid_to", "recorded_by")
Day = Annotated[str | None, typer.Option(help="A day, YYYY-MM-DD.", show_default=False)]


@identifiers_app.command("add")
def identifiers_add(
    path: RecordPath,
    animal: Annotated[str, typer.Argument(help="Animal id.", show_default=False)],
    scheme: Annotated[
        str,
        typer.Argument(
            help="Who issues the id: eu.animalId (ISO 11784, 15 digits), managementTag (the "
            "farm's own number), std.iso.11785, a registry's scheme ...",
            show_default=False,
        ),
    ],
    identifier: Annotated[str, typer.Argument(help="The id under that scheme.")],
    valid_from: Annotated[
        str | None, typer.Option("--from", help="First day it holds (default: from the start).")
    ] = None,
    valid_to: Annotated[
        str | None, typer.Option("--to", help="Last day it holds (default: it still holds).")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="Who records it.")] = "",
) -> None:
    """Record that an animal carries an identifier (over days; none may overlap another
    animal's days of the same identifier). Adding it again stores nothing."""
    record = open_from_cli(path)
    held, new = add_identifier(
        record, animal, scheme, identifier, _day(valid_from, "--from"), _day(valid_to, "--to"), by
    )
    said = "now carries" if new else "already carries"
    console.print(
        f"{escape(held.animal_id)} {said} {escape(held.scheme)} {escape(held.id)} ({_span(held)})",
        highlight=False,
    )


@identifiers_app.command("list")
def identifiers_list(
    path: RecordPath,
    animal: Annotated[str | None, typer.Option(help="Only this animal.")] = None,
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """List every animal's identifiers, with the days each holds."""
    found = identifiers(open_from_cli(path), animal)
    rows = listing_rows(COLUMNS, [_row(i) for i in found])
    print_listing(rows, output_format, lambda: console.print(_table(found)))


def _row(ident: Identifier) -> dict[str, object]:
    return {
        "animal_id": ident.animal_id,
        "scheme": ident.scheme,
        "id": ident.id,
        "valid_from": ident.valid_from,
        "valid_to": ident.valid_to,
        "recorded_by": ident.recorded_by,
    }


def _table(found: list[Identifier]) -> ListingTable:
    table = ListingTable(title=f"{len(found)} identifiers")
    add_id_column(table, "animal")
    for column in ("scheme", "id", "holds"):
        table.add_column(column)
    for ident in found:
        table.add_row(ident.animal_id, escape(ident.scheme), escape(ident.id), _span(ident))
    return table


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{option} {text!r}: give a day as YYYY-MM-DD") from None


def _span(ident: Identifier) -> str:
    start = ident.valid_from.isoformat() if ident.valid_from else "the start"
    end = ident.valid_to.isoformat() if ident.valid_to else "now"
    return f"from {start} to {end}"
