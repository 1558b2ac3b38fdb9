"""Writes through the intake journal, and its replay: the one path of the CLI and the service.

The service's writer commits each group of uploads with `commit_journalled` (their bytes
journalled first, under the writer lock, then committed, then marked); `herdrecord ingest`
journals its files a chunk at a time as `FileIntake` reads them. Both replay the journal
before they take new work (`replay_journal`) and clear it after syncing the record
(`Journal.make_durable`). The journal is written under the record's writer lock, so a
replay never sees an entry that a live writer is still committing.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from herdrecord.config import Settings
from herdrecord.contract.limits import BulkLimits
from herdrecord.errors import RecordLocked
from herdrecord.ingest.group_commit import (
    UploadRefused,
    content_type_of,
    parse_upload,
    write_uploads,
)
from herdrecord.ingest.ingestor import BatchOutcome, Ingestor, Status
from herdrecord.ingest.journal import Journal, JournalEntry, Received
from herdrecord.ingest.sources import Candidate, read_bytes, read_file
from herdrecord.store.compaction import compact_if_fragmented
from herdrecord.store.record import Record

FILES_PER_SYNC = 64  # files journalled per fsync by `herdrecord ingest`
BYTES_PER_SYNC = 256 * 1024 * 1024
REPLAY_CHUNK_BYTES = 256 * 1024 * 1024  # journalled bytes parsed and committed together

log = logging.getLogger("herdrecord.ingest.journal")


@dataclass(frozen=True)
class ReplayReport:
    """What a replay of the journal did: its entries, and their batches' outcomes."""

    entries: int
    outcomes: tuple[BatchOutcome, ...]

    def count(self, status: Status) -> int:
        """Return how many replayed batches ended with `status`."""
        return sum(1 for outcome in self.outcomes if outcome.status == status)


def replay_journal(record: Record, journal: Journal) -> ReplayReport:
    """Commit again every journalled upload not known durable, oldest first: a batch the
    ledger has is a duplicate (nothing written), one a power cut lost is stored again."""
    with record.writer():  # a live writer journals and settles under the lock: none in flight
        entries = journal.unsettled()
    outcomes: list[BatchOutcome] = []
    for chunk in _chunks(entries):
        try:
            outcomes.extend(_replay_locked(record, journal, chunk))
        except RecordLocked:
            raise
        except Exception:
            # One entry that breaks the ingest must not stop every start: try each alone,
            # and keep one that still fails for a person (`herdrecord journal`).
            log.exception("replaying %d journalled uploads failed; trying each", len(chunk))
            for entry in chunk:
                try:
                    outcomes.extend(_replay_locked(record, journal, [entry]))
                except RecordLocked:
                    raise
                except Exception as exc:
                    log.exception("journal entry %d cannot be replayed", entry.entry_id)
                    journal.fail(entry.entry_id, f"replay failed: {type(exc).__name__}: {exc}")
    if entries:
        with record.writer():
            compact_if_fragmented(record)
    return ReplayReport(len(entries), tuple(outcomes))


def _replay_locked(
    record: Record, journal: Journal, entries: Sequence[JournalEntry]
) -> list[BatchOutcome]:
    # Each attempt takes the lock afresh, so the rows of one that failed midway are removed
    # (the writer's recovery on entry) before anything else is written.
    with record.writer():
        return _replay_chunk(record, journal, entries)


def _chunks(entries: Sequence[JournalEntry]) -> Iterator[list[JournalEntry]]:
    chunk: list[JournalEntry] = []
    size = 0
    for entry in entries:
        if chunk and size + entry.size_bytes > REPLAY_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry.size_bytes
    if chunk:
        yield chunk


def _replay_chunk(
    record: Record, journal: Journal, entries: Sequence[JournalEntry]
) -> list[BatchOutcome]:
    uploads: list[list[Candidate]] = []
    owners: list[int] = []
    settled: dict[int, list[BatchOutcome]] = defaultdict(list)
    for entry in entries:
        settled[entry.entry_id] = []
        parsed = parse_upload(
            entry.content_type,
            entry.content_encoding,
            journal.body(entry.entry_id),
            record.settings.max_batch_bytes,
            entry.source,
            BulkLimits.from_settings(record.settings),
        )
        if isinstance(parsed, UploadRefused):
            problems = tuple(parsed.problems) or (parsed.message,)
            settled[entry.entry_id].append(BatchOutcome(entry.source, None, "rejected", problems))
            continue
        # An HTTP upload was stored whole or not at all; a file of `herdrecord ingest` per batch.
        for upload in [parsed] if entry.whole else [[c] for c in parsed]:
            uploads.append(upload)
            owners.append(entry.entry_id)
    for owner, outcomes in zip(owners, write_uploads(record, uploads), strict=True):
        settled[owner].extend(outcomes)
    journal.settle(list(settled.items()))
    return [outcome for outcomes in settled.values() for outcome in outcomes]


def commit_journalled(
    record: Record,
    journal: Journal,
    uploads: Sequence[Sequence[Candidate]],
    received: Sequence[Received | None],
    compact: bool = True,
    known: list[Ingestor] | None = None,
) -> list[list[BatchOutcome]]:
    """Journal the uploads' bytes (one fsync), commit them as `commit_uploads` does, then
    mark their entries; an upload without bytes (`None`) is committed unjournalled."""
    with record.writer():
        journalled = [i for i, r in enumerate(received) if r is not None]
        ids = journal.add([r for r in received if r is not None], whole=True)
        results = write_uploads(record, uploads, known)
        journal.settle(
            [(entry_id, results[i]) for i, entry_id in zip(journalled, ids, strict=True)]
        )
        if compact:
            compact_if_fragmented(record)
    return results


@dataclass
class _Open:
    """A journalled file whose batches are not all decided yet."""

    entry_id: int
    source: str
    expected: int = 0
    read: bool = False
    outcomes: list[BatchOutcome] = field(default_factory=list)


class FileIntake:
    """The batch files (or standard input) of one `herdrecord ingest`, journalled before
    their batches are offered, a chunk of files per fsync; each entry is settled once every
    batch of it has an outcome (pass each outcome to `outcome`). Without a journal it only
    reads the files."""

    def __init__(self, journal: Journal | None, settings: Settings) -> None:
        self.journal = journal
        self.max_bytes = settings.max_batch_bytes
        self.bulk = BulkLimits.from_settings(settings)
        self._open: dict[str, deque[_Open]] = defaultdict(deque)

    def files(self, paths: Sequence[Path], after_file: Callable[[], None]) -> Iterator[Candidate]:
        """Yield the batches of every file, each file journalled before its first batch."""
        for start, end in _file_chunks(paths):
            chunk = paths[start:end]
            ids = self.journal.add_files(chunk) if self.journal else [None] * len(chunk)
            for path, entry_id in zip(chunk, ids, strict=True):
                yield from self._tracked(
                    entry_id, str(path), read_file(path, self.max_bytes, self.bulk)
                )
                after_file()

    def stdin(self, data: bytes) -> Iterator[Candidate]:
        """Yield the one JSON batch read from standard input, journalled first."""
        entry_id = None
        if self.journal is not None:
            received = Received("-", content_type_of(data), "", data)
            entry_id = self.journal.add([received], whole=False)[0]
        yield from self._tracked(entry_id, "-", [read_bytes(io.BytesIO(data), "-", self.max_bytes)])

    def outcome(self, outcome: BatchOutcome) -> None:
        """Take a batch's final outcome; settle its file's entry once all of them are in."""
        waiting = self._open.get(outcome.source)
        if not waiting:
            return
        entry = next((e for e in waiting if len(e.outcomes) < e.expected), waiting[0])
        entry.outcomes.append(outcome)
        self._settle_if_done(entry)

    def _tracked(
        self, entry_id: int | None, source: str, candidates: Iterator[Candidate] | list[Candidate]
    ) -> Iterator[Candidate]:
        if entry_id is None:
            yield from candidates
            return
        entry = _Open(entry_id, source)
        self._open[source].append(entry)
        for candidate in candidates:
            entry.expected += 1
            yield candidate
        entry.read = True
        self._settle_if_done(entry)

    def _settle_if_done(self, entry: _Open) -> None:
        if not entry.read or len(entry.outcomes) < entry.expected or self.journal is None:
            return
        self.journal.settle([(entry.entry_id, entry.outcomes)])
        self._open[entry.source].remove(entry)


def _file_chunks(paths: Sequence[Path]) -> Iterator[tuple[int, int]]:
    """Yield [start, end) ranges of files journalled together (bounded count and bytes)."""
    start, size = 0, 0
    for i, path in enumerate(paths):
        try:
            file_size = path.stat().st_size
        except OSError:
            file_size = 0
        if i > start and (i - start >= FILES_PER_SYNC or size + file_size > BYTES_PER_SYNC):
            yield start, i
            start, size = i, 0
        size += file_size
    if start < len(paths):
        yield start, len(paths)
