"""The `keyframes` command: an animal's chosen pictures of some days, as JPEG files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from herdrecord.cli.common import RecordPath, app, console, errors, open_from_cli, parse_day
from herdrecord.errors import InvalidInput
from herdrecord.events.tags import animal_with_tag
from herdrecord.events.window import check_days
from herdrecord.lookup.pictures import animal_keyframes, keyframe_jpeg


@app.command()
def keyframes(
    path: RecordPath,
    animal: Annotated[
        str | None,
        typer.Argument(help="The animal's id (or give --tag).", show_default=False),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder to write the JPEG files to.")] = Path("."),
    day: Annotated[
        str | None, typer.Option(help="One UTC day, YYYY-MM-DD (else --from/--to).")
    ] = None,
    from_: Annotated[str | None, typer.Option("--from", help="First UTC day.")] = None,
    to: Annotated[str | None, typer.Option(help="Last UTC day.")] = None,
    tag: Annotated[str | None, typer.Option(help="Name the animal by its ear tag.")] = None,
) -> None:
    """Write the keyframes an animal's days chose as JPEG files
    (DAY_DEVICE_TRACK_TIME.jpg), newest day first; prints each file's path."""
    if (animal is None) == (tag is None):
        raise InvalidInput("name the animal: give its id or --tag TAG, not both")
    if day is not None and (from_ is not None or to is not None):
        raise InvalidInput("give --day, or --from/--to, not both")
    start, end = parse_day("--from", day or from_), parse_day("--to", day or to)
    check_days(start, end)
    record = open_from_cli(path)
    animal_id = animal if animal is not None else animal_with_tag(record, str(tag))
    refs = animal_keyframes(record, animal_id, start, end)
    out.mkdir(parents=True, exist_ok=True)
    for ref in refs:
        name = f"{ref.day}_{ref.device_id}_{ref.track_id}_{ref.t:%H%M%S}.jpg".replace("/", "-")
        target = out / name
        target.write_bytes(keyframe_jpeg(record, ref.device_id, ref.track_id, ref.t))
        console.print(escape(str(target)), highlight=False, soft_wrap=True)
    errors.print(f"{len(refs)} keyframes of {escape(animal_id)} written to {escape(str(out))}")
