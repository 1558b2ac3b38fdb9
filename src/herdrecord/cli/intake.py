"""What the commands that take batches in share: the intake pipeline run with a progress bar,
and the reports of ingest, replay and linking. Apart from `common`, since importing the
pipeline and linking costs about a second that reading commands need not pay."""

from __future__ import annotations

import sys

from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.status import Status

from herdrecord.cli.common import console, errors, progress
from herdrecord.cli.console import CliConsole
from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import BatchOutcome, IngestReport
from herdrecord.ingest.pipeline import IntakeProgress, IntakeResult, LinkPolicy, ingest_batches
from herdrecord.ingest.replay import ReplayReport
from herdrecord.linking.run import LinkReport
from herdrecord.store.record import Record


def counts_text(counts: dict[str, int]) -> str:
    return (
        f"[green]{counts['accepted']} accepted[/] · {counts['duplicate']} duplicate · "
        f"[red]{counts['rejected']} rejected[/]"
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
