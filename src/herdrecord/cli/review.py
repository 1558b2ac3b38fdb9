"""Commands about identities: link, animals, review, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, open_from_cli, print_link_report
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
from herdrecord.linking.review import (
    ReviewItem,
    ReviewOutcome,
    TrackletRef,
    confirm,
    depart,
    enrol_new,
    merge,
    reassign,
    rename,
    split,
)
from herdrecord.linking.run import link_pending, relink_all
from herdrecord.lookup.animals import (
    AnimalSummary,
    confirms_identity,
    find_animals,
    get_animal,
    identity_confirmation,
)
from herdrecord.lookup.review_queue import AT_STAKE_MEANING, MARGIN_MEANING, open_questions

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


REVIEW_COLUMNS = (
    "rank",
    "tracklet",
    "pen_id",
    "start",
    "end",
    "minutes",
    "animal_id",
    "score",
    "margin",
    "minutes_at_stake",
    "reason",
)


REVIEW_LIST_HELP = (
    "Show the review queue, ranked by the tracked minutes at stake (most first), and how "
    "many questions are open in all.\n\n"
    f"{AT_STAKE_MEANING} Score: cosine similarity to the linked animal. {MARGIN_MEANING} "
    "The why column says it in words: tied with the runner-up, or how far ahead or behind."
)


@review_app.command("list", help=REVIEW_LIST_HELP)
def review_list(
    path: RecordPath,
    limit: Annotated[int, typer.Option(help="Most items to show.", min=1)] = 20,
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """Show the review queue, ranked by the tracked minutes at stake (most first)."""
    page = open_questions(open_from_cli(path), limit)
    rows = listing_rows(
        REVIEW_COLUMNS,
        [
            {
                "rank": rank,
                "tracklet": str(item.tracklet),
                "pen_id": item.pen_id,
                "start": item.start,
                "end": item.end,
                "minutes": _minutes(item.end - item.start),
                "animal_id": item.animal_id,
                "score": item.score,
                "margin": item.margin,
                "minutes_at_stake": round(item.priority / 60, 2),
                "reason": item.reason,
            }
            for rank, item in enumerate(page.items, start=1)
        ],
    )
    shown = len(page.items)
    print_listing(
        rows,
        output_format,
        lambda: console.print(_review_table(page.items)),
        f"{shown} of {page.total} open questions shown, most minutes at stake first"
        + (f" (--limit {page.total} for all)" if shown < page.total else ""),
    )


def _minutes(span: timedelta) -> float:
    return round(span.total_seconds() / 60, 1)


def _review_table(items: tuple[ReviewItem, ...]) -> Table:
    # No vertical rules: nine columns then fit a 100-column terminal.
    table = ListingTable(
        title="review queue", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0)
    )
    table.add_column("rank", justify="right")
    add_id_column(table, "tracklet")
    for column in ("pen", "start"):
        table.add_column(column)
    table.add_column("minutes", justify="right")
    table.add_column("animal")
    table.add_column("score", justify="right")
    table.add_column("at stake (min)", justify="right")
    table.add_column("why")
    for rank, item in enumerate(items, start=1):
        table.add_row(
            str(rank),
            str(item.tracklet),
            item.pen_id,
            f"{item.start:%Y-%m-%d %H:%M}",
            f"{_minutes(item.end - item.start):.0f}",
            item.animal_id or "unknown",
            "" if item.score is None else f"{item.score:.3f}",
            f"{item.priority / 60:.1f}",
            item.reason,
        )
    return table


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
