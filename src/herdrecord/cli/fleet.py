"""The `fleet` commands: reads across many barns, one record per farm under a root."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from herdrecord.cli.common import app, console, errors, parse_day
from herdrecord.cli.export import ExportDir, FirstDay, LastDay
from herdrecord.cli.query import parse_params, rows_table
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    RowFormat,
    check_output,
    listing_rows,
    print_listing,
    write_rows,
)
from herdrecord.cli.sql import show_sql_result
from herdrecord.config import Settings
from herdrecord.query.export import ExportFilters, ExportProgress
from herdrecord.query.fleet import fleet_export, fleet_query, fleet_records
from herdrecord.query.sandbox import run_sql

fleet_app = typer.Typer(
    help="Read across many barns: a root (directory or s3://bucket/prefix) holding one record "
    "per farm, ROOT/<farm_id>.",
    no_args_is_help=True,
)
app.add_typer(fleet_app, name="fleet")

FleetRoot = Annotated[
    str,
    typer.Argument(
        help="The fleet's root: a directory or s3://bucket/prefix with one record per farm.",
        show_default=False,
    ),
]
Format = Annotated[
    RowFormat,
    typer.Option(
        "--format",
        help="table (on the terminal), csv, json (one array), jsonl (one object per line) or "
        "parquet (needs --out).",
    ),
]
Out = Annotated[
    Path | None,
    typer.Option(help="File to write the rows to (csv, json, jsonl, parquet) instead of stdout."),
]


FARM_COLUMNS = ("farm_id", "record", "batches", "tracklets", "animals", "last_batch_at")


@fleet_app.command(name="farms")
def farms_command(root: FleetRoot, output_format: ListFormatOption = ListFormat.table) -> None:
    """List the farms of the fleet: their records, batches, tracklets and animals."""
    farms = []
    for record in fleet_records(root, Settings()):
        ledger = record.dataset("batches").to_table(columns=["committed_at"])
        farms.append(
            {
                "farm_id": record.farm_id,
                "record": record.uri,
                "batches": ledger.num_rows,
                "tracklets": record.table("tracklets").count_rows(),
                "animals": record.table("animals").count_rows(),
                "last_batch_at": max(ledger.column("committed_at").to_pylist(), default=None),
            }
        )
    rows = listing_rows(FARM_COLUMNS, farms)
    print_listing(rows, output_format, lambda: console.print(_farms_table(root, farms)))


def _farms_table(root: str, farms: list[dict[str, Any]]) -> Table:
    table = ListingTable(title=escape(root))
    for column in ("farm", "record", "batches", "tracklets", "animals", "last batch (UTC)"):
        table.add_column(column, justify="right" if column in ("batches", "animals") else "left")
    for farm in farms:
        last = farm["last_batch_at"]
        table.add_row(
            escape(farm["farm_id"]),
            escape(farm["record"]),
            f"{farm['batches']:,}",
            f"{farm['tracklets']:,}",
            f"{farm['animals']:,}",
            f"{last:%Y-%m-%d %H:%M}" if last else "-",
        )
    return table


@fleet_app.command(name="sql")
def fleet_sql_command(
    root: FleetRoot,
    query: Annotated[
        str,
        typer.Argument(
            help="One SELECT over the views of every farm (animals, tracklets, days, events, "
            "...), each row with its farm_id.",
            show_default=False,
        ),
    ],
    output_format: Format = RowFormat.table,
    out: Out = None,
) -> None:
    """Run one read-only SELECT across every farm, sandboxed as `herdrecord sql` is."""
    check_output(output_format, out)
    settings = Settings()
    show_sql_result(run_sql(root, query, settings, fleet=True), output_format, out, settings)


@fleet_app.command(name="query")
def fleet_query_command(
    root: FleetRoot,
    name: Annotated[str, typer.Argument(help="Named query: lameness, disease, growth ...")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="A parameter as NAME=VALUE; repeat for more.", show_default=False
        ),
    ] = None,
    output_format: Format = RowFormat.table,
    out: Out = None,
) -> None:
    """Run a named cohort query on every farm; one row per animal, with its farm_id."""
    check_output(output_format, out)
    records = fleet_records(root, Settings())
    rows = fleet_query(records, name, parse_params(param or []))
    if output_format is RowFormat.table:
        table, _ = rows_table(rows, console.width)
        console.print(table)
    else:
        write_rows(rows, output_format, out)
    notes = console if output_format is RowFormat.table or out is not None else errors
    notes.print(f"{rows.num_rows:,} animals on {len(records)} farms", highlight=False)


@fleet_app.command(name="export")
def fleet_export_command(
    root: FleetRoot,
    out: ExportDir,
    first_day: FirstDay = None,
    last_day: LastDay = None,
) -> None:
    """Export every farm as Parquet, one dataset per table partitioned by farm_id (hive):
    DuckDB, Polars, Spark or Ray read OUT/days as one table with a farm_id column."""
    filters = ExportFilters(
        first_day=parse_day("--from", first_day), last_day=parse_day("--to", last_day)
    )
    records = fleet_records(root, Settings())
    with Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), console=errors
    ) as progress:
        farms = progress.add_task("farms", total=len(records))
        table = progress.add_task("", total=None, visible=False)

        def on_farm(farm: str) -> None:
            progress.update(farms, description=f"farm {farm}")

        def on_progress(step: ExportProgress) -> None:
            progress.update(
                table, description=step.table, completed=step.done, total=step.total, visible=True
            )
            if step.table == "animals" and step.done == step.total:
                progress.advance(farms)

        result = fleet_export(records, out, filters, on_farm=on_farm, on_progress=on_progress)
    for farm, tables in result.rows.items():
        counted = ", ".join(f"{rows:,} {name}" for name, rows in tables.items())
        console.print(f"{escape(farm)}: {counted}", soft_wrap=True)
    console.print(f"wrote {escape(str(result.out_dir))} ({len(result.rows)} farms)")


@fleet_app.command(name="lying-before-lameness")
def lying_before_lameness_command(
    root: FleetRoot,
    min_score: Annotated[
        float, typer.Option("--min-score", help="The lowest lameness score that makes a case.")
    ] = 2,
    days: Annotated[
        int,
        typer.Option(help="Days looked back over, the day of the score included.", min=1),
    ] = 3,
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """Compare, per farm, lame animals' mean lying share over the DAYS days up to a lameness
    score of at least MIN_SCORE with their farm's unscored animals on those days, on Ray Data
    over every farm's Lance tables (the fleet extra; a local Ray, or the cluster RAY_ADDRESS
    names)."""
    # Ray is an optional extra, and heavy: only the command that runs on it imports it; where
    # it is not installed the import raises ExtraNotInstalled, one line saying what to install.
    from herdrecord.query.fleet_engine import lying_before_lameness

    records = fleet_records(root, Settings())
    rows = lying_before_lameness(records, min_score, days)
    farms = f"{len(records)} farm{'s' if len(records) != 1 else ''}"
    note = (
        f"{farms}; cases: animals with a lameness score >= {min_score:g} in force, their "
        f"{days} days up to it; controls: their farm's unscored animals, those days"
    )
    print_listing(rows, output_format, lambda: console.print(_lameness_table(root, rows)), note)


def _lameness_table(root: str, rows: pa.Table) -> Table:
    table = ListingTable(title=escape(root))
    table.add_column("farm")
    for column in ("cases", "case days", "lying share", "controls", "control days", "lying share"):
        table.add_column(column, justify="right")
    for row in rows.to_pylist():
        table.add_row(
            escape(row["farm_id"]),
            f"{row['cases']:,}",
            f"{row['case_days']:,}",
            _share(row["case_lying_share"]),
            f"{row['controls']:,}",
            f"{row['control_days']:,}",
            _share(row["control_lying_share"]),
        )
    return table


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share:.3f}"
