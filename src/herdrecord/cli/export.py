"""The `export` command: Parquet for outcome studies, with progress per table."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from herdrecord.cli.common import RecordPath, app, console, errors, open_from_cli, parse_day
from herdrecord.errors import InvalidInput
from herdrecord.query.export import (
    ExportFilters,
    ExportOptions,
    ExportProgress,
    ExportResult,
    export_parquet,
)
from herdrecord.query.icar_export import AdeExport, export_icar_ade

ExportDir = Annotated[Path, typer.Option(help="New (or empty) directory to write the export into.")]
FirstDay = Annotated[
    str | None, typer.Option("--from", help="First UTC day to export, YYYY-MM-DD.")
]
LastDay = Annotated[
    str | None, typer.Option("--to", help="Last UTC day to export (included), YYYY-MM-DD.")
]


class ExportFormat(StrEnum):
    """What an export writes."""

    parquet = "parquet"
    icar_ade = "icar-ade"


@app.command(name="export")
def export_command(
    path: RecordPath,
    out: ExportDir,
    first_day: FirstDay = None,
    last_day: LastDay = None,
    animals: Annotated[
        str | None, typer.Option(help="Export only these animals: ids, comma-separated.")
    ] = None,
    cohort: Annotated[
        str | None, typer.Option(help="Export only the animals of this named cohort query.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Parameter of the cohort query, KEY=VALUE; repeatable."),
    ] = None,
    with_observations: Annotated[
        bool, typer.Option("--with-observations", help="Add the observation rows.")
    ] = False,
    with_keyframes: Annotated[
        bool, typer.Option("--with-keyframes", help="Add the keyframes with their JPEG bytes.")
    ] = False,
    with_embeddings: Annotated[
        bool,
        typer.Option(
            "--with-embeddings", help="Add the tracklet descriptors (float32) with the embedder."
        ),
    ] = False,
    export_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="parquet (the tables, for outcome studies) or icar-ade (the events in force, "
            "attention events and gait scores as ICAR ADE JSON collections).",
        ),
    ] = ExportFormat.parquet,
) -> None:
    """Export the record as Parquet for outcome studies, readable without herdrecord, or
    its events as ICAR ADE collections for farm software."""
    filters = ExportFilters(
        first_day=parse_day("--from", first_day),
        last_day=parse_day("--to", last_day),
        animal_ids=_parse_animals(animals),
        cohort=cohort,
        cohort_params=_parse_params(param or []),
    )
    options = ExportOptions(with_observations, with_keyframes, with_embeddings)
    record = open_from_cli(path)
    if export_format is ExportFormat.icar_ade:
        if options != ExportOptions():
            raise InvalidInput(
                "--with-observations, --with-keyframes and --with-embeddings "
                "are for the Parquet export; ADE has events only"
            )
        console.print(_ade_summary(export_icar_ade(record, out, filters)), soft_wrap=True)
        return
    progress = Progress(
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        console=errors,
    )
    tasks: dict[str, TaskID] = {}

    def on_progress(step: ExportProgress) -> None:
        if not tasks:
            progress.start()  # on the first table: a refused export prints only its error
        if step.table not in tasks:
            tasks[step.table] = progress.add_task(step.table, total=step.total, rows=0)
        progress.update(tasks[step.table], completed=step.done, rows=step.rows)

    try:
        result = export_parquet(record, out, filters, options, on_progress)
    finally:
        progress.stop()
    console.print(_summary(result), soft_wrap=True)
    if filters != ExportFilters() and not any(
        table.rows for name, table in result.tables.items() if name != "animals"
    ):
        errors.print(
            f"nothing in the record matches {_described(filters)}: every table of the export "
            "is empty (its columns only)",
            highlight=False,
            soft_wrap=True,
        )


def _described(filters: ExportFilters) -> str:
    """Return the filters as the options that gave them: `--from 2026-12-05 --animals P1`."""
    parts = [f"--from {filters.first_day}"] if filters.first_day else []
    parts += [f"--to {filters.last_day}"] if filters.last_day else []
    if filters.animal_ids is not None:
        parts.append(f"--animals {','.join(filters.animal_ids)}")
    if filters.cohort is not None:
        parts.append(f"--cohort {filters.cohort}")
        parts += [f"-p {key}={value}" for key, value in filters.cohort_params.items()]
    return " ".join(parts)


def _summary(result: ExportResult) -> str:
    counts = ", ".join(f"{t.rows:,} {name}" for name, t in result.tables.items())
    return (
        f"exported {counts} to {result.out_dir}: {result.files} files, "
        f"{result.size_bytes / 1e6:.1f} MB in {result.seconds:.1f} s"
    )


def _ade_summary(result: AdeExport) -> str:
    files = ", ".join(f"{count:,} in {name}" for name, count in result.files.items())
    text = f"exported {result.events:,} ADE events to {result.out_dir}: {files or 'none'}"
    if result.left_out:
        kinds = ", ".join(f"{count:,} {kind}" for kind, count in result.left_out.items())
        text += f"; left out (no ADE resource): {kinds}"
    return text


def _parse_animals(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(a.strip() for a in text.split(",") if a.strip())


def _parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param {item!r}: expected KEY=VALUE")
        if key.strip() in params:
            raise InvalidInput(f"--param {key.strip()!r} is given twice")
        params[key.strip()] = value
    return params
