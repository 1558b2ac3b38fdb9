"""The one intake pipeline: journal → check → group commit → settle → link.

Every caller that takes batch files in (the library's `ingest_batches`, `herdrecord ingest`,
`herdrecord demo`, `herdrecord import-mot`, the benchmarks and the tests' day-by-day
delivery) goes through `ingest_batches`, so each gets the same guarantees:

- what an earlier run journalled but did not make durable is replayed first;
- each file's bytes are journalled before its first batch is offered;
- each file is an upload of one, all or nothing, and a batch already stored is a duplicate;
- the record is synced and the journal cleared at the end;
- linking afterwards is a policy (`link="now"` or `"never"`), not a different code path.

The HTTP service's writer commits with the same pieces (`commit_journalled`, `link_pending`)
on its own thread, under the policy "when idle" (see `herdrecord.api.writer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import BatchOutcome, IngestReport, ingest
from herdrecord.ingest.journal import open_journal
from herdrecord.ingest.replay import FileIntake, ReplayReport, replay_journal
from herdrecord.ingest.sources import Candidate, batch_files
from herdrecord.linking.run import LinkReport, link_pending
from herdrecord.store.record import Record

LinkPolicy = Literal["now", "never"]


class IntakeProgress:
    """What a caller hears while the pipeline runs; override what you show (the CLI draws a
    progress bar). Every method does nothing by default."""

    def replayed(self, report: ReplayReport) -> None:
        """An earlier run's journalled uploads were committed again."""

    def started(self, files: int) -> None:
        """Reading begins: `files` batch files (1 for standard input)."""

    def outcome(self, outcome: BatchOutcome) -> None:
        """A batch has its final outcome."""

    def file_done(self) -> None:
        """A file has been read whole."""

    def linking(self) -> None:
        """Linking starts (policy "now")."""


@dataclass(frozen=True)
class IntakeResult:
    """What one run of the pipeline did: the replay, the ingest, and the link run."""

    replayed: ReplayReport | None
    report: IngestReport
    linked: LinkReport | None

    def count(self, status: Literal["accepted", "duplicate", "rejected"]) -> int:
        """Return how many of this run's batches ended with `status` (replay excluded)."""
        return self.report.count(status)


def ingest_batches(
    record: Record,
    sources: Sequence[str | Path] = (),
    *,
    stdin: bytes | None = None,
    link: LinkPolicy = "now",
    progress: IntakeProgress | None = None,
) -> IntakeResult:
    """Ingest batch files (.json, .json.gz, .parquet) or folders of them, or one JSON batch
    given as `stdin` bytes, through the record's journal; then link if `link` is "now".

    Raises InvalidInput when no batch file is found or both files and stdin are given."""
    if link not in ("now", "never"):
        raise InvalidInput(f"link policy {link!r}: expected 'now' or 'never'")
    if stdin is not None and sources:
        raise InvalidInput("- (standard input) cannot be mixed with files")
    files = [] if stdin is not None else batch_files([Path(s) for s in sources])
    if stdin is None and not files:
        named = " ".join(str(s) for s in sources) or "(nothing given)"
        raise InvalidInput(f"no batch files (.json, .json.gz, .parquet) in {named}")
    hears = progress or IntakeProgress()
    journal = open_journal(record)
    replayed = None
    try:
        if journal is not None:
            replayed = replay_journal(record, journal)
            if replayed.entries:
                hears.replayed(replayed)
        intake = FileIntake(journal, record.settings)

        def on_outcome(outcome: BatchOutcome) -> None:
            intake.outcome(outcome)
            hears.outcome(outcome)

        def candidates() -> Iterator[Candidate]:
            if stdin is not None:
                yield from intake.stdin(stdin)
                hears.file_done()
                return
            yield from intake.files(files, hears.file_done)

        hears.started(len(files) or 1)
        report = ingest(record, candidates(), on_outcome)
        if journal is not None:
            journal.make_durable()
    finally:
        if journal is not None:
            journal.close()
    linked = None
    if link == "now":
        hears.linking()
        linked = link_pending(record)
    return IntakeResult(replayed, report, linked)


def read_stdin(read: Callable[[int], bytes], record: Record) -> bytes:
    """Read one batch from a binary stream's `read`, one byte past the size limit (so an
    over-long batch is refused by the size check, not read whole)."""
    return read(record.settings.max_batch_bytes + 1)
