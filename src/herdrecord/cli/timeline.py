"""Commands about animal-days: one animal's timeline, and the record's days."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich import box
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, errors, open_from_cli, parse_day
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    listing_rows,
    notes_console,
    print_listing,
)
from herdrecord.days.derive import rebuild_days
from herdrecord.errors import InvalidInput
from herdrecord.events.rules import describe_event
from herdrecord.lookup.flagged import flagged_days
from herdrecord.lookup.timeline import (
    AnimalTimeline,
    CalibrationStatus,
    DaysSummary,
    animal_timeline,
    days_summary,
    plot_animal_timeline,
    weekly_summary,
)

DAILY_ROWS_UP_TO = 60  # longer periods print one row per week: two months of rows is a wall


@app.command(name="timeline")
def timeline_command(
    path: RecordPath,
    animal: Annotated[str, typer.Argument(help="Animal id.", show_default=False)],
    start: Annotated[
        str | None, typer.Option("--from", help="First day shown, YYYY-MM-DD (UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last day shown, YYYY-MM-DD (UTC).")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the timeline as a PNG here.")
    ] = None,
    daily: Annotated[
        bool | None,
        typer.Option(
            "--daily/--weekly",
            help=f"One row per day or per week [default: daily up to {DAILY_ROWS_UP_TO} days].",
            show_default=False,
        ),
    ] = None,
    output_format: ListFormatOption = ListFormat.table,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Kept for scripts written before --format: the same as --format jsonl.",
        ),
    ] = False,
) -> None:
    """Show one animal's days (behaviour, activity, weight, anomalies) and events; with
    --format csv, json or jsonl, its days as rows (every value whole), for scripts."""
    output_format = _timeline_format(output_format, as_json)
    record = open_from_cli(path)
    view = animal_timeline(record, animal, parse_day("--from", start), parse_day("--to", end))
    # The figure first: a path that cannot be written fails before any table is printed.
    figure = None if plot is None else plot_animal_timeline(view, plot)
    print_listing(view.days, output_format, lambda: _print_tables(view, daily))
    if figure is not None:
        # Beside rows for a script, stdout holds only the rows.
        notes_console(output_format).print(f"figure written to {figure}", highlight=False)


def _timeline_format(output_format: ListFormat, as_json: bool) -> ListFormat:
    """Return the format asked for: --json is --format jsonl, and never a second format."""
    if not as_json:
        return output_format
    if output_format not in (ListFormat.table, ListFormat.jsonl):
        raise InvalidInput(
            f"--json is --format jsonl: give one of --json and --format {output_format}"
        )
    return ListFormat.jsonl


def _print_tables(view: AnimalTimeline, daily: bool | None) -> None:
    _print_header(view)
    weekly = view.days.num_rows > DAILY_ROWS_UP_TO if daily is None else not daily
    if view.days.num_rows == 0:
        console.print("no days recorded in this period")
    elif weekly:
        console.print(_weekly_table(view, auto=daily is None))
    else:
        console.print(_daily_table(view))
    _print_events(view)


@app.command(name="days")
def days_command(
    path: RecordPath,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Re-derive every animal-day from the current links.")
    ] = False,
    flagged: Annotated[
        bool,
        typer.Option(
            "--flagged", help="List the flagged animal-days: animal, day, flags, deviation."
        ),
    ] = False,
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """Summarise the record's animal-days (or, with --flagged, list the flagged ones); with
    --rebuild, re-derive them all first."""
    record = open_from_cli(path)
    if rebuild:
        with errors.status("re-deriving every animal-day from the current links"):
            report = rebuild_days(record)
        notes_console(output_format).print(
            f"rebuilt {report.rows:,} animal-day rows over {report.days} days in "
            f"{report.seconds:.1f} s",
            highlight=False,
        )
    summary = days_summary(record)
    if flagged:
        rows = flagged_days(record)
        print_listing(rows, output_format, lambda: _print_flagged(rows), _summary(summary))
        return
    print_listing(
        listing_rows(SUMMARY_COLUMNS, [_summary_row(summary)]),
        output_format,
        lambda: console.print(_summary(summary), highlight=False),
        "" if output_format is ListFormat.table else _summary(summary),
    )


SUMMARY_COLUMNS = (
    "animals",
    "animal_days",
    "calendar_days",
    "first_day",
    "last_day",
    "flagged_animal_days",
    "flagged_animals",
    "weighings",
    "weight_cv_mae_kg",
)


def _summary_row(summary: DaysSummary) -> dict[str, Any]:
    fit = summary.calibration.calibration
    return vars(summary) | {
        "weighings": summary.calibration.weighings,
        "weight_cv_mae_kg": None if fit is None else fit.cv_mae_kg,
    }


def _print_flagged(rows: pa.Table) -> None:
    if rows.num_rows == 0:
        console.print("no flagged animal-days", highlight=False)
        return
    table = ListingTable(title=f"{rows.num_rows} flagged animal-days", title_justify="left")
    for column in ("day", "animal", "pen", "obs. h", "anomalies"):
        table.add_column(column, justify="right" if column == "obs. h" else "left")
    for row in rows.to_pylist():
        table.add_row(
            f"{row['day']}",
            row["animal_id"],
            row["pen_id"],
            _number(row["observed_min"], ".1f", 1 / 60),
            _flags(row["anomalies"], row["anomaly_z"]),
        )
    console.print(table)


def _calibration_line(status: CalibrationStatus) -> str:
    fit = status.calibration
    if fit is None:
        return (
            f"weight from area: no calibration yet: {status.weighings} scale weights, "
            f"need {status.needed}"
        )
    return (
        f"weight from area: cross-validated error {fit.cv_mae_kg:.1f} kg "
        f"({100 * fit.cv_mape:.1f} %), fitted on {fit.weighings} scale weights of "
        f"{fit.animals} animals"
    )


def _print_header(view: AnimalTimeline) -> None:
    name = f" · {view.display_name}" if view.display_name else ""
    status = view.status + (", provisional" if view.provisional else "")
    console.print(
        f"[bold]{view.animal_id}{name}[/] — {view.pen_id or 'no pen'}, {status}", highlight=False
    )
    days = view.days.column("day")
    first, last = (days[0].as_py(), days[-1].as_py()) if len(days) else (None, None)
    covered = f"{len(days)} days, {first} to {last}" if len(days) else "no days"
    # The period asked for is worth a mention only where the days do not fill it.
    short = view.start not in (None, first) or view.end not in (None, last)
    asked = f" (asked {view.start or '…'} to {view.end or '…'})" if short else ""
    console.print(f"{covered}{asked} · {view.events.num_rows} events", highlight=False)
    console.print(_calibration_line(view.calibration), highlight=False)


def _number(value: Any, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value * scale, spec)


def _flags(flags: list[str], z: float | None = None) -> str:
    """Return flags as a table cell: `lying_up, walking_speed_down` -> `lying↑ speed↓`."""
    short = [
        flag.replace("walking_speed", "speed").replace("_up", "↑").replace("_down", "↓")
        for flag in flags
    ]
    return " ".join(short) + ("" if z is None or not flags else f" {z:.1f}σ")


# Two-line headers, no vertical rules and one space between columns keep fourteen columns
# readable in 100 characters.
_FIGURE_HEADERS = (
    "obs.\nh",
    "lying\n%",
    "active\n%",
    "eat\nmin",
    "walk\npx/s",
    "lying\nbouts",
    "gait",
    "est.\nkg",
    "scale\nkg",
    "link",
    "key-\npics",
)


_CAPTION = (
    "obs. h: hours observed; est. kg: from standing area; link: mean link score (cosine); "
    "anomalies: ↑/↓ against the animal's own baseline and its pen-mates, largest deviation in σ"
)


def _table(title: str, first: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        caption=_CAPTION,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        padding=0,
        show_edge=False,
    )
    table.add_column(first, no_wrap=True)
    table.add_column("pen", no_wrap=True)
    for header in _FIGURE_HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    return table


def _daily_table(view: AnimalTimeline) -> Table:
    table = _table(f"{view.days.num_rows} days", "day")
    table.add_column("anomalies", style="red")
    for row in view.days.to_pylist():
        table.add_row(
            f"{row['day']}",
            row["pen_id"],
            _number(row["observed_min"], ".1f", 1 / 60),
            _number(row["lying_share"], ".0f", 100),
            _number(row["activity_index"], ".0f", 100),
            _number(row["eating_min"], ".0f"),
            _number(row["walking_speed_px_s"], ".0f"),
            str(row["lying_bouts"]),
            _number(row["gait_mean"], ".2f"),
            _number(row["weight_est_kg"], ".1f"),
            _number(row["scale_weight_kg"], ".1f"),
            _number(row["link_confidence"], ".2f"),
            str(len(row["keyframes"])),
            _flags(row["anomalies"], row["anomaly_z"]),
        )
    return table


def _weekly_table(view: AnimalTimeline, auto: bool) -> Table:
    weeks = weekly_summary(view.days)
    why = f", over {DAILY_ROWS_UP_TO} days (--daily for every day)" if auto else ""
    table = _table(f"{weeks.num_rows} weeks from Monday, means per day{why}", "week")
    table.add_column("days", justify="right", no_wrap=True)
    table.add_column("flagged", style="red")
    for row in weeks.to_pylist():
        flagged = row["flagged_days"]
        table.add_row(
            f"{row['week']}",
            row["pen_id"],
            _number(row["observed_min"], ".1f", 1 / 60),
            _number(row["lying_share"], ".0f", 100),
            _number(row["activity_index"], ".0f", 100),
            _number(row["eating_min"], ".0f"),
            _number(row["walking_speed_px_s"], ".0f"),
            _number(row["lying_bouts"], ".0f"),
            _number(row["gait_mean"], ".2f"),
            _number(row["weight_est_kg"], ".1f"),
            _number(row["scale_weight_kg"], ".1f"),
            _number(row["link_confidence"], ".2f"),
            str(row["keyframes"]),
            str(row["days"]),
            f"{flagged}: {_flags(row['anomalies'])}" if flagged else "",
        )
    return table


def _print_events(view: AnimalTimeline) -> None:
    console.print()
    if view.events.num_rows == 0:
        console.print("no events in this period")
        return
    table = Table(
        title=f"{view.events.num_rows} events",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        show_edge=False,
    )
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("details")
    table.add_column("by")
    for row in view.events.to_pylist():
        table.add_row(
            f"{row['at']:%Y-%m-%d %H:%M}", row["kind"], describe_event(row), row["author"]
        )
    console.print(table)


def _summary(summary: DaysSummary) -> str:
    if summary.animal_days == 0:
        counted = "no animal-days yet: ingest batches and link them (`herdrecord link PATH`)"
    else:
        share = summary.flagged_animal_days / summary.animal_days
        counted = (
            f"{summary.animals} animals, {summary.animal_days:,} animal-days over "
            f"{summary.calendar_days} days ({summary.first_day} to {summary.last_day})\n"
            f"flagged: {summary.flagged_animal_days:,} animal-days ({100 * share:.1f} %) of "
            f"{summary.flagged_animals} animals"
        )
    return f"{counted}\n{_calibration_line(summary.calibration)}"
