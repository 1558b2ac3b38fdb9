"""`herdrecord check`: verify a record (and repair what can be repaired)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from herdrecord.check import check_record, repair_record
from herdrecord.cli import RecordPath, app, console, open_from_cli


@app.command(name="check")
def check_command(
    path: RecordPath,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Fix what can be fixed: rows of writes that never committed, a batch listed "
            "twice, a stale index.",
        ),
    ] = False,
) -> None:
    """Verify a record: every batch whole and once, no lingering rows of killed writes, links,
    days and events naming what exists, the re-ID index current. Exit 1 on problems."""
    record = open_from_cli(path)
    with console.status("checking" if not repair else "repairing"):
        report = repair_record(record) if repair else check_record(record)
    for done in report.repaired:
        console.print(f"repaired: {done}")
    console.print(
        f"{report.batches} batches, {report.tracklets} tracklets checked in "
        f"{report.seconds:.1f} s: "
        + ("[green]no problems[/]" if report.ok else f"[red]{len(report.problems)} problems[/]")
    )
    if report.ok:
        return
    table = Table("problem", "what", "--repair fixes it")
    for problem in report.problems:
        table.add_row(problem.code, problem.message, "yes" if problem.repairable else "no")
    console.print(table)
    raise typer.Exit(1)
