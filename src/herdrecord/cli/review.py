"""Commands about identities: link, animals, review, history."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, open_from_cli, print_link_report
from herdrecord.linking.review import (
    ReviewOutcome,
    TrackletRef,
    confirm,
    depart,
    enrol_new,
    history,
    merge,
    reassign,
    rename,
    review_queue,
    split,
)
from herdrecord.linking.run import link_pending, relink_all
from herdrecord.lookup.animals import find_animals

review_app = typer.Typer(
    help="Answer uncertain links: confirm, reassign, new, merge, split, rename.",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")

By = Annotated[str, typer.Option("--by", help="Who is answering (kept in the audit trail).")]
Tracklet = Annotated[str, typer.Argument(help="Tracklet as DEVICE:TRACK.", show_default=False)]
Animal = Annotated[str, typer.Argument(help="Animal id.", show_default=False)]


@app.command()
def link(
    path: RecordPath,
    all_days: Annotated[bool, typer.Option("--all", help="Re-solve every pen-day.")] = False,
) -> None:
    """Link tracklets to animals (ingest does this; use it after a crash or with --all)."""
    record = open_from_cli(path)
    with console.status("linking tracklets to animals"):
        report = relink_all(record) if all_days else link_pending(record)
    print_link_report(report)


@app.command()
def animals(
    path: RecordPath,
    pen: Annotated[str | None, typer.Option(help="Only this pen.")] = None,
    status: Annotated[str | None, typer.Option(help="active, departed or merged.")] = None,
    search: Annotated[
        str | None, typer.Option(help="Part of the id, name or ear tag (any case).")
    ] = None,
) -> None:
    """List the record's animals, with the days each was seen."""
    found = find_animals(open_from_cli(path), pen, status, search)
    table = Table(title=f"{len(found)} animals")
    for column in ("animal", "name", "tag", "pen", "status", "provisional", "days", "last seen"):
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
    console.print(table)


@review_app.command("list")
def review_list(
    path: RecordPath,
    limit: Annotated[int, typer.Option(help="Most items to show.", min=1)] = 20,
) -> None:
    """Show the review queue, most valuable first."""
    items = review_queue(open_from_cli(path), limit)
    table = Table(title=f"review queue ({len(items)} shown)")
    for column in ("tracklet", "pen", "start", "minutes", "animal", "score", "why"):
        table.add_column(column)
    for item in items:
        table.add_row(
            str(item.tracklet),
            item.pen_id,
            f"{item.start:%Y-%m-%d %H:%M}",
            f"{(item.end - item.start).total_seconds() / 60:.0f}",
            item.animal_id or "unknown",
            "" if item.score is None else f"{item.score:.3f}",
            item.reason,
        )
    console.print(table)


def _print_outcome(outcome: ReviewOutcome) -> None:
    console.print(
        f"{outcome.action}: {', '.join(outcome.animals)}; {outcome.changed_links} links changed"
        + (
            f" in {outcome.relinked_pen_days} re-solved pen-days"
            if outcome.relinked_pen_days
            else ""
        )
    )


@review_app.command("confirm")
def review_confirm(path: RecordPath, tracklet: Tracklet, by: By) -> None:
    """Confirm a tracklet's current animal."""
    _print_outcome(confirm(open_from_cli(path), TrackletRef.parse(tracklet), by))


@review_app.command("reassign")
def review_reassign(path: RecordPath, tracklet: Tracklet, animal: Animal, by: By) -> None:
    """Link a tracklet to ANIMAL instead of its current one."""
    _print_outcome(reassign(open_from_cli(path), TrackletRef.parse(tracklet), animal, by))


@review_app.command("new")
def review_new(
    path: RecordPath,
    tracklets: Annotated[list[str], typer.Argument(help="Tracklets as DEVICE:TRACK.")],
    by: By,
    name: Annotated[str | None, typer.Option(help="Display name of the new animal.")] = None,
) -> None:
    """Enrol a new animal for the given tracklets."""
    refs = [TrackletRef.parse(t) for t in tracklets]
    _print_outcome(enrol_new(open_from_cli(path), refs, by, name))


@review_app.command("merge")
def review_merge(
    path: RecordPath,
    keep: Annotated[str, typer.Argument(help="Animal id that stays.")],
    gone: Annotated[str, typer.Argument(help="Animal id merged into KEEP.")],
    by: By,
) -> None:
    """Merge animal GONE into KEEP (one animal seen under two ids)."""
    _print_outcome(merge(open_from_cli(path), keep, gone, by))


@review_app.command("split")
def review_split(
    path: RecordPath,
    animal: Animal,
    tracklets: Annotated[list[str], typer.Argument(help="Tracklets to move, as DEVICE:TRACK.")],
    by: By,
    name: Annotated[str | None, typer.Option(help="Display name of the new animal.")] = None,
) -> None:
    """Move tracklets of ANIMAL to a new animal."""
    refs = [TrackletRef.parse(t) for t in tracklets]
    _print_outcome(split(open_from_cli(path), animal, refs, by, name))


@review_app.command("rename")
def review_rename(
    path: RecordPath,
    animal: Animal,
    name: Annotated[str, typer.Argument(help="New display name.")],
) -> None:
    """Name an animal (it stops being provisional)."""
    _print_outcome(rename(open_from_cli(path), animal, name))


@review_app.command("depart")
def review_depart(path: RecordPath, animal: Animal, by: By) -> None:
    """Mark ANIMAL as departed (sold, dead, gone): it stops being a candidate."""
    _print_outcome(depart(open_from_cli(path), animal, by))


@app.command(name="history")
def history_command(path: RecordPath, animal: Animal) -> None:
    """Show an animal's link decisions: the audit trail."""
    entries = history(open_from_cli(path), animal)
    table = Table(title=f"{animal}: {len(entries)} decisions")
    for column in ("decided at", "tracklet", "animal", "method", "by", "score", "current"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            f"{e.decided_at:%Y-%m-%d %H:%M:%S}",
            str(e.tracklet),
            e.animal_id or "unknown",
            e.method,
            e.decided_by,
            "" if e.score is None else f"{e.score:.3f}",
            "yes" if e.current else "",
        )
    console.print(table)
