"""Commands about identities: link, and people's answers to the review queue (`review
confirm`, `reassign`, `new`, `merge`, `split`, `rename`, `depart`; `review list` is `queue`)."""

from __future__ import annotations

from typing import Annotated

import typer

from herdrecord.cli.common import Animal, RecordPath, app, console, open_from_cli
from herdrecord.cli.intake import print_link_report
from herdrecord.cli.queue import review_app
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
