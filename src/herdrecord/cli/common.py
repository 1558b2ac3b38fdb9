"""What every command shares: the app, its consoles, the RECORD argument, opening a record,
progress bars and reports."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.status import Status

from herdrecord.cli.console import CliConsole
from herdrecord.cli.root import app as app  # the commands register on it through here
from herdrecord.cli.root import console as console
from herdrecord.cli.root import errors as errors
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import BatchOutcome, IngestReport
from herdrecord.ingest.pipeline import IntakeProgress, IntakeResult, LinkPolicy, ingest_batches
from herdrecord.ingest.replay import ReplayReport
from herdrecord.linking.run import LinkReport
from herdrecord.store.record import Record, open_record

# A str, not a Path: a Path would fold s3://bucket/herd into s3:/bucket/herd.
RecordPath = Annotated[
    str,
    typer.Argument(help="The record: a directory, or s3://bucket/prefix.", show_default=False),
]


def parse_day(option: str, text: str | None) -> date | None:
    """Return the day an option gives (None when not given); one line for a bad one."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r}: expected a date as YYYY-MM-DD") from None


def env_settings() -> Settings:
    return Settings()


def open_from_cli(path: str | Path) -> Record:
    """Open the record at PATH with settings from the environment; say what a recovery
    after a power cut did, and what to re-send."""
    record = open_record(str(path), env_settings())
    if record.recovery is not None:
        errors.print(f"[yellow]{escape(record.recovery.describe())}[/]")
    return record


def counts_text(counts: dict[str, int]) -> str:
    return (
        f"[green]{counts['accepted']} accepted[/] · {counts['duplicate']} duplicate · "
        f"[red]{counts['rejected']} rejected[/]"
    )


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    )


def print_ingest_report(report: IngestReport) -> None:
    for outcome in report.outcomes:
        if outcome.status == "rejected":
            label = outcome.batch_id or outcome.source
            errors.print(f"[red]rejected[/] {label} ({outcome.source}):")
            for problem in outcome.problems:
                errors.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"{report.count('accepted')} accepted, {report.count('duplicate')} duplicate, "
        f"{report.count('rejected')} rejected; {report.rows_written:,} rows written in "
        f"{report.seconds:.1f} s"
        + (f"; compacted {', '.join(report.compacted)}" if report.compacted else "")
    )
    if report.farm_adopted:
        errors.print(
            f"the record takes farm {escape(report.farm_adopted)} from its first batch; "
            "batches of other farms are refused from now on",
            highlight=False,
            soft_wrap=True,
        )


def human_bytes(size: int) -> str:
    """Return a size in decimal units (1 MB = 10^6 bytes, as `herdrecord budget` counts)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def print_link_report(report: LinkReport) -> None:
    """Print one line about a linking run."""
    console.print(
        f"linked {report.linked:,} of {report.tracklets:,} tracklets in {report.pen_days} "
        f"pen-days ({report.unknown:,} unknown, {len(report.enrolled)} provisional animals "
        f"enrolled; threshold {report.threshold:.3f}) in {report.seconds:.1f} s"
    )
    if report.model:
        console.print(report.model, highlight=False)
    if report.metric:
        console.print(report.metric, highlight=False)
    if report.cameras:
        console.print(report.cameras, highlight=False)


def print_replay(report: ReplayReport, to: CliConsole = console) -> None:
    """Say what replaying the journal did, if it found anything."""
    if report.entries:
        to.print(
            f"replayed {report.entries} journalled uploads an earlier run left: "
            f"{report.count('accepted')} batches stored again, "
            f"{report.count('duplicate')} already stored, {report.count('rejected')} rejected"
        )


class _IntakeBar(IntakeProgress):
    """The pipeline's progress drawn as a rich bar on stderr, with running counts."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None
        self.counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        self.status: Status | None = None

    def replayed(self, report: ReplayReport) -> None:
        print_replay(report)

    def started(self, files: int) -> None:
        self.task = self.bar.add_task("ingesting", total=files)

    def outcome(self, outcome: BatchOutcome) -> None:
        self.counts[outcome.status] += 1
        if self.task is not None:
            self.bar.update(self.task, description=counts_text(self.counts))

    def file_done(self) -> None:
        if self.task is not None:
            self.bar.advance(self.task)

    def linking(self) -> None:
        self.bar.stop()
        self.status = console.status("linking tracklets to animals")
        self.status.start()


def ingest_with_progress(
    record: Record, sources: list[str], link: LinkPolicy = "now"
) -> IntakeResult:
    """Run the intake pipeline on SOURCES ("-" alone: one JSON batch on standard input) with
    a progress bar; print the rejected batches, the totals and the link run."""
    stdin = None
    if "-" in sources:
        if sources != ["-"]:
            raise InvalidInput("- (standard input) cannot be mixed with files")
        stdin = sys.stdin.buffer.read(record.settings.max_batch_bytes + 1)
        sources = []
    with progress() as bar:
        hears = _IntakeBar(bar)
        try:
            result = ingest_batches(record, sources, stdin=stdin, link=link, progress=hears)
        finally:
            if hears.status is not None:
                hears.status.stop()
    print_ingest_report(result.report)
    if result.linked is not None and result.linked.tracklets:
        print_link_report(result.linked)
    return result
