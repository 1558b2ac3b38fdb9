"""Commands about identities: link, animals, review, history."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from herdrecord.cli.common import Animal, RecordPath, app, console, open_from_cli
from herdrecord.cli.intake import print_link_report
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    add_id_column,
    listing_rows,
    print_listing,
)
from herdrecord.linking.review import (
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
from herdrecord.lookup.review_queue import (
    AT_STAKE_MEANING,
    MARGIN_MEANING,
    ReviewItem,
    open_questions,
)

review_app = typer.Typer(
    help="Answer uncertain links: confirm, reassign, new, merge, split, rename.",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")

By = Annotated[str, typer.Option("--by", help="Who is answering (kept in the audit trail).")]
Tracklet = Annotated[str, typer.Argument(help="Tracklet as DEVICE:TRACK.", show_default=False)]


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
