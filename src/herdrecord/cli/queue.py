"""`herdrecord review list`: the review queue, read without importing linking (the answers,
which re-solve pen-days, are `review`). The `review` group is made here."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, open_from_cli
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    add_id_column,
    listing_rows,
    print_listing,
)
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
