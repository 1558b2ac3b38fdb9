"""The edge intake journal: each upload's bytes on disk for good before it is acknowledged.

Local Lance commits survive a process crash but not a power cut (Lance does not fsync). So an
upload's bytes, as received, are first committed to a SQLite journal beside the tables (WAL,
synchronous=FULL: fsynced), then written to Lance; the entry is then marked committed, and
once the record's files have been synced (`os.sync`, on a schedule rather than per upload)
it is known durable and removed. On start, every entry not known durable is replayed
through the normal ingest, which is idempotent: a batch the ledger has is a duplicate no-op,
one whose commit the power cut lost is stored again (`replay.py`).

Only the first write of an entry needs the fsync. Its later changes of state are written
with synchronous=NORMAL: losing one to a power cut only means the entry is replayed, or
pushed, once more, and both are idempotent.

With `HERDRECORD_EDGE_OUTBOX` the journal is also the edge's outbox: committed entries stay
until `herdrecord push` has delivered them to a central service (`push.py`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from herdrecord.ingest.group_commit import content_type_of
from herdrecord.ingest.ingestor import BatchOutcome
from herdrecord.ingest.sources import PARQUET_MAGIC
from herdrecord.store.location import fsync_directory
from herdrecord.store.record import Record

JOURNAL_FILE = ".herdrecord.journal.sqlite"
COPY_CHUNK_BYTES = 1 << 20  # files are copied into the journal a MiB at a time

EntryState = Literal["received", "committed", "failed"]
PushState = Literal["waiting", "pushed", "refused"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL,
    whole INTEGER NOT NULL,           -- 1: stored whole or not at all (an HTTP upload)
    size_bytes INTEGER NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'received',
    batch_ids TEXT NOT NULL DEFAULT '[]',
    message TEXT,
    durable INTEGER NOT NULL DEFAULT 0,
    push TEXT,                        -- NULL: not for pushing
    push_message TEXT,
    pushed_at TEXT
)
"""
_COLUMNS = (
    "entry_id, received_at, source, content_type, content_encoding, whole, size_bytes, state, "
    "batch_ids, message, durable, push, push_message"
)


@dataclass(frozen=True)
class Received:
    """One upload as it arrived: its bytes and how they were labelled."""

    source: str
    content_type: str
    content_encoding: str
    body: bytes


@dataclass(frozen=True)
class JournalEntry:
    """One journalled upload, without its bytes."""

    entry_id: int
    received_at: datetime
    source: str
    content_type: str
    content_encoding: str
    whole: bool
    size_bytes: int
    state: EntryState
    batch_ids: tuple[str, ...]
    message: str | None
    durable: bool
    push: PushState | None
    push_message: str | None


@dataclass(frozen=True)
class JournalSummary:
    """How many entries the journal holds, by what they wait for."""

    received: int  # not yet committed to the record (replayed on start)
    unsynced: int  # committed, not yet known durable
    waiting: int  # committed, waiting to be pushed
    refused: int  # refused by the central service
    failed: int  # committed once, refused when replayed
    size_bytes: int


def journal_bytes(record: Record) -> int:
    """Return the bytes on disk of the record's intake journal (0 if it has none), without
    opening or creating it."""
    path = record.location.local_path
    if path is None:
        return 0
    return sum(
        file.stat().st_size
        for file in (path / JOURNAL_FILE, path / (JOURNAL_FILE + "-wal"))
        if file.exists()
    )


def open_journal(record: Record) -> Journal | None:
    """Return the record's intake journal; None where every commit is durable without one."""
    # A record on object storage needs none: a PUT is durable when it returns.
    path = record.location.local_path
    if path is None:
        return None
    return Journal(
        path / JOURNAL_FILE,
        outbox=record.settings.edge_outbox,
        busy_timeout_s=max(record.settings.lock_timeout_s, 5.0),
    )


class Journal:
    """The intake journal of one record (a SQLite file); safe to share between threads."""

    def __init__(self, path: Path, outbox: bool, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.outbox = outbox
        created = not path.exists()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA journal_size_limit = 16777216")  # a big upload's WAL shrinks
        self._db.execute(_SCHEMA)
        if created:
            fsync_directory(path.parent)  # the new file's name must survive a power cut too

    def close(self) -> None:
        """Close the journal."""
        with self._lock:
            self._db.close()

    def add(self, uploads: Sequence[Received], whole: bool = True) -> list[int]:
        """Journal uploads durably (one fsync for all); return their entry ids."""
        if not uploads:
            return []
        now = _now()
        with self._transaction(durable=True) as db:
            return [
                _insert(
                    db, now, u.source, u.content_type, u.content_encoding, whole, len(u.body)
                ).write_all(u.body)
                for u in uploads
            ]

    def add_files(self, paths: Sequence[Path]) -> list[int | None]:
        """Journal files durably (one fsync for all), each committed per batch; return their
        entry ids (None for a file that cannot be read: ingest reports it)."""
        now = _now()
        ids: list[int | None] = []
        with self._transaction(durable=True) as db:
            for path in paths:
                try:
                    with path.open("rb") as handle:
                        size = os.fstat(handle.fileno()).st_size
                        head = handle.read(4)
                        handle.seek(0)
                        entry = _insert(db, now, str(path), content_type_of(head), "", False, size)
                        ids.append(entry.copy_from(handle))
                except OSError:
                    ids.append(None)
        return ids

    def settle(self, settled: Sequence[tuple[int, Sequence[BatchOutcome]]]) -> None:
        """Record what the ingest did with each entry's batches: committed entries are kept
        until the record is synced (and pushed, in an outbox); rejected ones are removed."""
        if not settled:
            return
        push = "waiting" if self.outbox else None
        with self._transaction(durable=False) as db:
            for entry_id, outcomes in settled:
                _settle(db, entry_id, outcomes, push)

    def unsettled(self) -> list[JournalEntry]:
        """Return the entries not known durable in the record, oldest first (to replay)."""
        return self._entries("state = 'received' OR (state = 'committed' AND durable = 0)")

    def waiting(self, refused_too: bool = False) -> list[JournalEntry]:
        """Return the committed entries waiting to be pushed, oldest first."""
        states = "('waiting', 'refused')" if refused_too else "('waiting')"
        return self._entries(f"state = 'committed' AND push IN {states}")

    def entries(self) -> list[JournalEntry]:
        """Return every entry, oldest first."""
        return self._entries("1 = 1")

    def body(self, entry_id: int) -> bytes:
        """Return an entry's bytes as received."""
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM entries WHERE entry_id = ?", (entry_id,)
            ).fetchone()
        if row is None:
            raise KeyError(entry_id)
        return bytes(row[0])

    def make_durable(self) -> int:
        """Sync the machine's files, then mark the entries committed before as durable and
        remove those nothing else waits for; return how many were marked."""
        with self._lock:
            rows = self._db.execute(
                "SELECT entry_id FROM entries WHERE state = 'committed' AND durable = 0"
            ).fetchall()
        if not rows:
            return 0
        # os.sync: every file system, so the Lance files of every process that wrote them.
        os.sync()
        ids = [row[0] for row in rows]
        with self._transaction(durable=False) as db:
            db.executemany("UPDATE entries SET durable = 1 WHERE entry_id = ?", [(i,) for i in ids])
        self.release()
        return len(ids)

    def fail(self, entry_id: int, message: str) -> None:
        """Keep an entry that cannot be replayed for a person, and replay it no more."""
        with self._transaction(durable=False) as db:
            db.execute(
                "UPDATE entries SET state = 'failed', message = ? WHERE entry_id = ?",
                (message, entry_id),
            )

    def mark_pushed(self, entry_id: int) -> None:
        """Note that the central service stored (or already had) an entry's batches."""
        with self._transaction(durable=False) as db:
            db.execute(
                "UPDATE entries SET push = 'pushed', push_message = NULL, pushed_at = ? "
                "WHERE entry_id = ?",
                (_now(), entry_id),
            )

    def mark_refused(self, entry_id: int, message: str) -> None:
        """Note that the central service refused an entry, and why; it is not sent again."""
        with self._transaction(durable=False) as db:
            db.execute(
                "UPDATE entries SET push = 'refused', push_message = ? WHERE entry_id = ?",
                (message, entry_id),
            )

    def release(self) -> int:
        """Remove the entries that are durable and pushed (or not for pushing)."""
        with self._transaction(durable=False) as db:
            removed = db.execute(
                "DELETE FROM entries WHERE state = 'committed' AND durable = 1 "
                "AND (push IS NULL OR push = 'pushed')"
            ).rowcount
        if removed:
            self.reclaim()
        return int(removed)

    def reclaim(self) -> None:
        """Give the freed pages back to the file system: an incremental vacuum (a journal made
        before it was switched on gets one full VACUUM once it is empty), then a truncating
        checkpoint so the file itself shrinks."""
        with self._lock:
            db = self._db
            if int(db.execute("PRAGMA auto_vacuum").fetchone()[0]) == 0:
                if db.execute("SELECT count(*) FROM entries").fetchone()[0] == 0:
                    db.executescript("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
            else:
                # executescript steps the pragma to the end; `execute` frees one page at most.
                db.executescript("PRAGMA incremental_vacuum;")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def summary(self) -> JournalSummary:
        """Return the entries' counts by what they wait for, and their bytes."""
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FILTER (WHERE state = 'received'), "
                "count(*) FILTER (WHERE state = 'committed' AND durable = 0), "
                "count(*) FILTER (WHERE state = 'committed' AND push = 'waiting'), "
                "count(*) FILTER (WHERE push = 'refused'), "
                "count(*) FILTER (WHERE state = 'failed'), "
                "coalesce(sum(size_bytes), 0) FROM entries"
            ).fetchone()
        return JournalSummary(*(int(value) for value in row))

    def _entries(self, where: str) -> list[JournalEntry]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE {where} ORDER BY entry_id"
            ).fetchall()
        return [_entry(row) for row in rows]

    @contextlib.contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        """Run statements as one transaction, fsynced at commit when `durable`."""
        with self._lock:
            db = self._db
            if not durable:
                db.execute("PRAGMA synchronous = NORMAL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                if not durable:
                    db.execute("PRAGMA synchronous = FULL")


@dataclass(frozen=True)
class _Inserted:
    """A new entry whose body (a zero blob of its size) is still to be written."""

    db: sqlite3.Connection
    entry_id: int

    def write_all(self, body: bytes) -> int:
        if body:
            with self.db.blobopen("entries", "body", self.entry_id) as blob:
                blob.write(body)
        return self.entry_id

    def copy_from(self, handle: io.BufferedReader) -> int:
        with self.db.blobopen("entries", "body", self.entry_id) as blob:
            while chunk := handle.read(min(COPY_CHUNK_BYTES, len(blob) - blob.tell())):
                blob.write(chunk)
        return self.entry_id


def _insert(
    db: sqlite3.Connection,
    now: str,
    source: str,
    content_type: str,
    content_encoding: str,
    whole: bool,
    size: int,
) -> _Inserted:
    cursor = db.execute(
        "INSERT INTO entries (received_at, source, content_type, content_encoding, whole, "
        "size_bytes, body) VALUES (?, ?, ?, ?, ?, ?, zeroblob(?))",
        (now, source, content_type, content_encoding, int(whole), size, size),
    )
    return _Inserted(db, int(cursor.lastrowid or 0))


def _settle(
    db: sqlite3.Connection, entry_id: int, outcomes: Sequence[BatchOutcome], push: str | None
) -> None:
    row = db.execute("SELECT state FROM entries WHERE entry_id = ?", (entry_id,)).fetchone()
    if row is None:
        return
    kept = [o for o in outcomes if o.status != "rejected"]
    if not kept:
        if row[0] == "received":  # never acknowledged: nothing to keep
            db.execute("DELETE FROM entries WHERE entry_id = ?", (entry_id,))
        else:  # acknowledged once, refused now: kept for a person to look at
            problems = [p for o in outcomes for p in o.problems]
            db.execute(
                "UPDATE entries SET state = 'failed', message = ? WHERE entry_id = ?",
                ("; ".join(problems[:5]) or "rejected", entry_id),
            )
        return
    batch_ids = [o.batch_id or "" for o in kept]
    if len(kept) < len(outcomes):
        _keep_only(db, entry_id, batch_ids)
    db.execute(
        "UPDATE entries SET state = 'committed', batch_ids = ?, message = NULL, "
        "push = coalesce(push, ?) WHERE entry_id = ?",
        (json.dumps(batch_ids), push, entry_id),
    )


def _keep_only(db: sqlite3.Connection, entry_id: int, batch_ids: list[str]) -> None:
    """Cut a bulk Parquet entry down to its committed batches: that is what was acknowledged,
    and what a central service, which stores an upload whole or not at all, should get."""
    body = bytes(
        db.execute("SELECT body FROM entries WHERE entry_id = ?", (entry_id,)).fetchone()[0]
    )
    if body[:4] != PARQUET_MAGIC:
        return
    table = pq.read_table(io.BytesIO(body))
    kept = table.filter(pc.is_in(table.column("batch_id"), value_set=pa.array(batch_ids)))
    buffer = io.BytesIO()
    pq.write_table(kept, buffer)
    data = buffer.getvalue()
    db.execute(
        "UPDATE entries SET body = ?, size_bytes = ? WHERE entry_id = ?",
        (data, len(data), entry_id),
    )


def _entry(row: tuple[object, ...]) -> JournalEntry:
    (entry_id, received_at, source, content_type, encoding, whole, size, state, batch_ids) = row[:9]
    message, durable, push, push_message = row[9:]
    return JournalEntry(
        entry_id=int(str(entry_id)),
        received_at=datetime.fromisoformat(str(received_at)),
        source=str(source),
        content_type=str(content_type),
        content_encoding=str(encoding),
        whole=bool(whole),
        size_bytes=int(str(size)),
        state=str(state),  # type: ignore[arg-type]
        batch_ids=tuple(json.loads(str(batch_ids))),
        message=None if message is None else str(message),
        durable=bool(durable),
        push=None if push is None else str(push),  # type: ignore[arg-type]
        push_message=None if push_message is None else str(push_message),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
