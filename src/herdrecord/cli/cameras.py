"""`herdrecord cameras overlap|separate|list`: the registry of overlapping camera views."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import pyarrow as pa
import typer
from rich.markup import escape
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, open_from_cli
from herdrecord.cli.rows import RowFormat, write_rows
from herdrecord.linking.cameras import camera_overlaps, set_overlap

cameras_app = typer.Typer(
    help="Which cameras of a pen have overlapping views (they see one animal twice at once): "
    "overlap, separate, list.",
    no_args_is_help=True,
)
app.add_typer(cameras_app, name="cameras")

PenArgument = Annotated[str, typer.Argument(help="The pen the cameras look at.")]
CameraArgument = Annotated[str, typer.Argument(help="A camera id, as in the batches.")]


class ListFormat(StrEnum):
    """How `cameras list` writes the pairs."""

    table = "table"
    csv = "csv"
    json = "json"


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
def cameras_list(
    path: RecordPath,
    output_format: Annotated[
        ListFormat, typer.Option("--format", help="table, csv or json (lines).")
    ] = ListFormat.table,
) -> None:
    """List the camera pairs registered as overlapping, by pen."""
    pairs = camera_overlaps(open_from_cli(path))
    if output_format is not ListFormat.table:
        rows = pa.table(
            {
                "pen_id": pa.array([p for p, _, _ in pairs], pa.string()),
                "camera_id": pa.array([a for _, a, _ in pairs], pa.string()),
                "other_camera_id": pa.array([b for _, _, b in pairs], pa.string()),
            }
        )
        write_rows(rows, RowFormat(output_format.value), None)
        return
    if not pairs:
        console.print("no overlapping cameras registered")
        return
    table = Table("pen", "camera", "overlaps camera")
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
