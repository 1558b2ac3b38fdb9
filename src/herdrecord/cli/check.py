"""`herdrecord check`: verify a record (and repair what can be repaired)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, open_from_cli
from herdrecord.ops.check import check_record, repair_record


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


@app.command(name="backup")
def backup_command(
    path: RecordPath,
    dest: Annotated[Path, typer.Argument(help="New directory for the backup.")],
) -> None:
    """Back up a record (consistent while ingest runs: ingest waits milliseconds at most)."""
    from herdrecord.ops.backup import backup_record

    record = open_from_cli(path)
    with console.status(f"backing up {record.path}"):
        report = backup_record(record, dest)
    console.print(
        f"backed up {report.batches} batches ({sum(report.rows.values()):,} rows, "
        f"{report.bytes / 1e6:.1f} MB) to {report.dest} in {report.seconds:.1f} s"
    )


@app.command(name="restore")
def restore_command(
    backup: Annotated[Path, typer.Argument(help="A directory `herdrecord backup` wrote.")],
    path: Annotated[Path, typer.Argument(help="New directory for the restored record.")],
) -> None:
    """Restore a backup into a new record, rebuild its re-ID index and check it."""
    from herdrecord.ops.backup import restore_record

    with console.status(f"restoring {backup}"):
        report = restore_record(backup, path)
    console.print(
        f"restored {report.batches} batches to {path}: "
        + ("[green]check passed[/]" if report.ok else f"[red]{len(report.problems)} problems[/]")
    )
    if not report.ok:
        for problem in report.problems:
            console.print(f"  {problem.code}: {problem.message}")
        raise typer.Exit(1)
