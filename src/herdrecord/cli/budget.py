"""Commands about storage: the per-animal-year budget and compaction with retention."""

from __future__ import annotations

from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, open_from_cli
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    listing_rows,
    print_listing,
)
from herdrecord.days.budget import BudgetReport, measure_budget
from herdrecord.days.retention import compact

BUDGET_COLUMNS = (
    "table",
    "rows",
    "live_bytes",
    "disk_bytes",
    "measured_mb_per_animal_year",
    "projected_mb_per_animal_year",
)


@app.command()
def budget(path: RecordPath, output_format: ListFormatOption = ListFormat.table) -> None:
    """Report MB per animal per year, by table, measured and projected, against the budget."""
    report = measure_budget(open_from_cli(path))
    tables = sorted(report.tables, key=lambda t: -t.projected_mb_per_animal_year)
    rows = listing_rows(BUDGET_COLUMNS, [vars(t) | {"table": t.name} for t in tables])
    span = f"{report.first_day} to {report.last_day}" if report.first_day else "no days yet"
    verdict = "[green]within[/]" if report.within_budget else "[red]over[/]"
    print_listing(
        rows,
        output_format,
        lambda: console.print(_budget_table(report)),
        f"{report.animals} animals, {report.animal_days} animal-days ({span}); projected "
        f"{report.projected_mb_per_animal_year:.1f} MB per animal-year with retention, "
        f"{verdict} the budget of {report.budget_mb_per_animal_year:.0f} MB",
    )


def _budget_table(report: BudgetReport) -> Table:
    table = ListingTable(title="bytes per animal-year (MB = 10^6 bytes)")
    for column in ("table", "rows", "live MB", "on disk MB", "measured MB/yr", "projected MB/yr"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for t in sorted(report.tables, key=lambda t: -t.projected_mb_per_animal_year):
        table.add_row(
            t.name,
            f"{t.rows:,}",
            f"{t.live_bytes / 1e6:.1f}",
            f"{t.disk_bytes / 1e6:.1f}",
            f"{t.measured_mb_per_animal_year:.2f}",
            f"{t.projected_mb_per_animal_year:.2f}",
        )
    table.add_row(
        "[bold]total[/]",
        "",
        f"{sum(t.live_bytes for t in report.tables) / 1e6:.1f}",
        f"{sum(t.disk_bytes for t in report.tables) / 1e6:.1f}",
        f"[bold]{report.measured_mb_per_animal_year:.2f}[/]",
        f"[bold]{report.projected_mb_per_animal_year:.2f}[/]",
    )
    return table


@app.command(name="compact")
def compact_command(path: RecordPath) -> None:
    """Apply the retention tiers now and compact every table (old versions past
    HERDRECORD_KEEP_VERSIONS_DAYS are removed)."""
    record = open_from_cli(path)
    with console.status("applying retention tiers and compacting"):
        report = compact(record)
    r = report.retention
    console.print(
        f"retention through {r.through or 'no data'}: removed {r.observations:,} observation "
        f"rows, {r.samples:,} samples, {r.keyframes:,} keyframes; compacted "
        f"{len(report.compacted)} tables; {report.bytes_before / 1e6:.1f} MB -> "
        f"{report.bytes_after / 1e6:.1f} MB on disk in {report.seconds:.1f} s"
    )
