"""`herdrecord cameras overlap|separate|list`: the registry of overlapping camera views."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from herdrecord.cli.common import RecordPath, app, console, open_from_cli
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    listing_rows,
    print_listing,
)
from herdrecord.linking.cameras import camera_overlaps, set_overlap

cameras_app = typer.Typer(
    help="Which cameras of a pen have overlapping views (they see one animal twice at once): "
    "overlap, separate, list.",
    no_args_is_help=True,
)
app.add_typer(cameras_app, name="cameras")

PenArgument = Annotated[str, typer.Argument(help="The pen the cameras look at.")]
CameraArgument = Annotated[str, typer.Argument(help="A camera id, as in the batches.")]


@cameras_app.command("overlap")
def cameras_overlap(
    path: RecordPath, pen: PenArgument, camera: CameraArgument, other: CameraArgument
) -> None:
    """Register that two cameras of a pen have overlapping views."""
    changed = set_overlap(open_from_cli(path), pen, camera, other)
    _said(path, pen, camera, other, "overlap" if changed else "already overlap", changed)


@cameras_app.command("separate")
def cameras_separate(
    path: RecordPath, pen: PenArgument, camera: CameraArgument, other: CameraArgument
) -> None:
    """Remove a registered overlap: the two cameras' views are apart."""
    changed = set_overlap(open_from_cli(path), pen, camera, other, overlapping=False)
    said = "no longer overlap" if changed else "were not registered as overlapping"
    _said(path, pen, camera, other, said, changed)


@cameras_app.command("list")
def cameras_list(path: RecordPath, output_format: ListFormatOption = ListFormat.table) -> None:
    """List the camera pairs registered as overlapping, by pen."""
    pairs = camera_overlaps(open_from_cli(path))
    rows = listing_rows(
        ("pen_id", "camera_id", "other_camera_id"),
        [{"pen_id": p, "camera_id": a, "other_camera_id": b} for p, a, b in pairs],
    )
    print_listing(rows, output_format, lambda: _print_pairs(pairs))


def _print_pairs(pairs: list[tuple[str, str, str]]) -> None:
    if not pairs:
        console.print("no overlapping cameras registered")
        return
    table = ListingTable("pen", "camera", "overlaps camera")
    for pen_id, a, b in pairs:
        table.add_row(escape(pen_id), escape(a), escape(b))
    console.print(table)


def _said(path: str, pen: str, camera: str, other: str, what: str, changed: bool) -> None:
    console.print(
        f"pen {escape(pen.strip())}: cameras {escape(camera.strip())} and "
        f"{escape(other.strip())} {what}",
        highlight=False,
    )
    if changed:
        console.print(
            "links made from now on use it; past days take effect after "
            f"[bold]herdrecord link {escape(path)} --all[/]",
            highlight=False,
        )
