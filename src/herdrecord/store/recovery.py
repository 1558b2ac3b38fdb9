"""Opening a local record after a power cut: back to the last readable version of a table.

Lance writes a version's data files, then its manifest, without fsync. After a power cut
the newest manifest of a table can be empty or torn, or name data or deletion files that
never reached the disk. Opening a record checks each table's newest version for that
evidence: a manifest that is short or lacks Lance's closing magic, a data file missing or
not at its recorded size, a deletion file missing or empty. Nothing else counts: an error
without such evidence (a full file table, a flaky card) stops the open with "nothing
changed" rather than touch a version that may be good.

A table whose newest versions are damaged goes back to its last sound one: the damaged
manifests are moved to `_damaged/` in the table's directory (kept, not deleted), so Lance
opens the good one and writes on from it. The whole plan (every table's fallback) is made
first and noted durably (`.herdrecord.recovery.json`, state "in progress") before anything
moves, so a recovery cut short is finished by the next open.

What that loses is said, not guessed at: batches no longer whole are taken out whole
(ledger row and rows) and named, so re-sending them stores them again (the edge journal
replays those it still holds): tracklets are counted against the ledger exactly; in a batch
table that went back, a batch committed after the version it went back to and short of its
ledger counts; rows whose ledger row was lost. If the ledger itself went back, every batch
acknowledged after its last sound version must be re-sent (one still held is a duplicate).
`herdrecord check` shows the note until `--repair`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lance

from herdrecord.errors import HerdrecordError
from herdrecord.store.schema import BATCH_TABLES
from herdrecord.store.sql import sql_literal

RECOVERY_FILE = ".herdrecord.recovery.json"
DAMAGED_DIR = "_damaged"
LANCE_MAGIC = b"LANC"  # the last bytes of every Lance manifest
_U64_MAX = 2**64 - 1
# A batch table's rows per batch, and the ledger column that counts them.
_COUNTED = {
    "tracklets": "n_tracklets",
    "samples": "n_samples",
    "observations": "n_observations",
    "keyframes": "n_keyframes",
}

log = logging.getLogger("herdrecord.store.recovery")


@dataclass(frozen=True)
class TableFallback:
    """One table taken back to its last sound version."""

    table: str
    unreadable: tuple[int, ...]  # versions whose manifest, data or deletion files are damaged
    now_at: int  # the version the table is at now
    written_at: str  # when that version was written (UTC, ISO)
    why: str = ""  # the evidence found on the newest damaged version


@dataclass
class Recovery:
    """What opening a record after a power cut did, and what must be re-sent."""

    at: str
    fallbacks: list[TableFallback]
    resend_batches: list[str] = field(default_factory=list)
    resend_after: str | None = None  # the ledger went back: batches acknowledged after this
    state: str = "done"  # "in progress" until every step is done

    def describe(self) -> str:
        """Return what happened and what to do, in a few lines."""
        lines = [
            f"{f.table}: newest version(s) {', '.join(map(str, f.unreadable))} damaged "
            f"({f.why}; a power cut?); back to version {f.now_at} of {f.written_at}"
            for f in self.fallbacks
        ]
        if self.resend_batches:
            shown = ", ".join(self.resend_batches[:20])
            more = " ..." if len(self.resend_batches) > 20 else ""
            lines.append(
                f"re-send {len(self.resend_batches)} batches, taken out because their rows "
                f"were lost: {shown}{more}"
            )
        if self.resend_after:
            lines.append(
                f"re-send every batch acknowledged after {self.resend_after} (the ledger went "
                "back; a batch still held is reported duplicate)"
            )
        return "\n".join(lines)


class _Unsure(Exception):
    """A version could not be checked, and there is no evidence it is damaged."""


def recover_torn_versions(path: Path, settings: Any) -> Recovery | None:
    """Take every table of the local record at `path` back to its last sound version if its
    newest is damaged; return what was done, or None when every table was sound."""
    from herdrecord.store.location import LocalLocation

    location = LocalLocation(path)
    if not _unfinished(location) and not any(_newest_damaged(t) for t in _tables(path)):
        return None
    lock = location.acquire_lock(settings.lock_timeout_s)
    try:
        recovery = _unfinished(location) or _plan(path)
        if recovery is None:  # another process recovered it while this one waited
            return None
        _note(location, recovery)  # durable before anything moves
        for fallback in recovery.fallbacks:
            _move_aside(path / f"{fallback.table}.lance", fallback.unreadable)
        recovery.resend_batches = sorted(
            set(recovery.resend_batches) | set(_take_out_broken_batches(path, recovery))
        )
        recovery.state = "done"
        _note(location, recovery)
    finally:
        lock.release()
    log.warning("recovered %s after a power cut:\n%s", path, recovery.describe())
    return recovery


def pending_recovery(read: bytes | None) -> list[Recovery]:
    """Return the recoveries noted in a record's recovery file (its bytes; None: none)."""
    if read is None:
        return []
    out = []
    for item in json.loads(read):
        fallbacks = [
            TableFallback(
                f["table"], tuple(f["unreadable"]), f["now_at"], f["written_at"], f.get("why", "")
            )
            for f in item["fallbacks"]
        ]
        out.append(
            Recovery(
                item["at"],
                fallbacks,
                list(item["resend_batches"]),
                item["resend_after"],
                item.get("state", "done"),
            )
        )
    return out


def _tables(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("*.lance") if p.is_dir())


def _versions(table: Path) -> list[tuple[int, Path]]:
    """Return the table's versions and manifest files, newest first (both naming schemes)."""
    found = []
    for manifest in (table / "_versions").glob("*.manifest"):
        number = int(manifest.stem)
        version = _U64_MAX - number if number > 2**63 else number
        found.append((version, manifest))
    return sorted(found, reverse=True)


def _damage(table: Path, version: int, manifest: Path) -> str | None:
    """Return the evidence that a version is damaged, or None if it is sound; raise _Unsure
    when it cannot be checked and nothing shows it damaged."""
    try:
        size = manifest.stat().st_size
        with manifest.open("rb") as handle:
            handle.seek(max(size - len(LANCE_MAGIC), 0))
            tail = handle.read()
    except OSError as error:
        raise _Unsure(f"{manifest}: {error}") from error
    if size < 16 or tail != LANCE_MAGIC:
        return f"manifest {'empty' if size == 0 else 'torn'}"
    dataset = None
    for attempt in range(2):  # a passing error is tried again before it counts
        try:
            dataset = lance.dataset(str(table), version=version)
            break
        except (OSError, ValueError, RuntimeError) as error:
            if attempt:
                raise _Unsure(f"{table.name} version {version}: {error}") from error
            time.sleep(0.2)
    assert dataset is not None
    for fragment in dataset.get_fragments():
        metadata = fragment.metadata
        for data_file in metadata.files:
            found = _size(table / "data" / data_file.path)
            recorded = data_file.file_size_bytes
            if found is None:
                return "a data file is missing"
            if recorded is not None and found != recorded:
                return "a data file is short"
        deletions = metadata.deletion_file
        if deletions is not None and not _size(table / deletions.path(fragment.fragment_id)):
            return "a deletion file is missing or empty"
    return None


def _size(file: Path) -> int | None:
    try:
        return file.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _Unsure(f"{file}: {error}") from error


def _newest_damaged(table: Path) -> bool:
    versions = _versions(table)
    if not versions:
        return False
    try:
        return _damage(table, *versions[0]) is not None
    except _Unsure as unsure:
        raise _cannot_check(unsure) from None


def _plan(path: Path) -> Recovery | None:
    """Return every table's fallback, or None if every table is sound; moves nothing."""
    fallbacks = []
    try:
        for table in _tables(path):
            damaged: list[tuple[int, str]] = []
            sound = None
            for version, manifest in _versions(table):
                why = _damage(table, version, manifest)
                if why is None:
                    sound = version
                    break
                damaged.append((version, why))
            if not damaged:
                continue
            if sound is None:
                raise HerdrecordError(
                    f"{table.name}: no version of the table can be read (a power cut took "
                    "every kept version); restore the record from a backup (herdrecord "
                    "restore), then re-send what came after it"
                )
            fallbacks.append(
                TableFallback(
                    table=table.name.removesuffix(".lance"),
                    unreadable=tuple(sorted(v for v, _ in damaged)),
                    now_at=sound,
                    written_at=_written_at(table, sound),
                    why=damaged[0][1],
                )
            )
    except _Unsure as unsure:
        raise _cannot_check(unsure) from None
    if not fallbacks:
        return None
    recovery = Recovery(datetime.now(UTC).isoformat(timespec="seconds"), fallbacks)
    recovery.state = "in progress"
    ledger = next((f for f in fallbacks if f.table == "batches"), None)
    if ledger is not None:
        recovery.resend_after = ledger.written_at
    return recovery


def _cannot_check(unsure: _Unsure) -> HerdrecordError:
    return HerdrecordError(
        f"cannot check the record's tables after a possible power cut ({unsure}); nothing "
        "was changed: free the resource or check the disk, then open it again"
    )


def _written_at(table: Path, version: int) -> str:
    # get_version reads only this version's manifest (versions() would read the torn ones).
    stamp = lance.dataset(str(table), version=version).get_version()["timestamp"]
    if isinstance(stamp, datetime):
        # Lance gives naive local time (datetime.fromtimestamp); astimezone reads it so.
        return stamp.astimezone(UTC).isoformat(timespec="seconds")
    return str(stamp)


def _move_aside(table: Path, versions: tuple[int, ...]) -> None:
    """Move the damaged versions' manifests to `_damaged/` (those not moved yet)."""
    damaged = table / DAMAGED_DIR
    damaged.mkdir(exist_ok=True)
    for version, manifest in _versions(table):
        if version in versions:
            os.replace(manifest, damaged / manifest.name)
    (table / "_versions" / "latest_version_hint.json").unlink(missing_ok=True)
    from herdrecord.store.location import fsync_directory

    fsync_directory(table / "_versions")
    fsync_directory(damaged)


def _take_out_broken_batches(path: Path, recovery: Recovery) -> list[str]:
    """Remove, whole, every batch that is not whole any more; return their ids (a re-send
    then stores them again). Runs under the writer lock: no write is in progress."""
    import lancedb

    db = lancedb.connect(str(path))
    ledger = db.open_table("batches").to_lance().to_table().to_pylist()
    committed = {row["batch_id"]: row for row in ledger}
    went_back = {f.table: datetime.fromisoformat(f.written_at) for f in recovery.fallbacks}
    broken: set[str] = set()
    for name in BATCH_TABLES:
        ids = db.open_table(name).to_lance().to_table(columns=["batch_id"]).column("batch_id")
        stored = Counter(ids.to_pylist())
        broken |= set(stored) - set(committed)  # rows whose ledger row was lost
        count = _COUNTED.get(name)
        if count is None:
            continue
        for batch_id, row in committed.items():
            # Retention thins samples, observations and keyframes on purpose: those are
            # counted only for batches committed after the version the table went back to.
            recent = name in went_back and row["committed_at"] > went_back[name]
            if (name == "tracklets" or recent) and stored.get(batch_id, 0) < row[count]:
                broken.add(batch_id)
    if broken:
        where = "batch_id IN (" + ", ".join(sql_literal(b) for b in sorted(broken)) + ")"
        db.open_table("batches").delete(where)  # first: from here on the batch is not there
        for name in BATCH_TABLES:
            db.open_table(name).delete(where)
    return sorted(broken)


def _unfinished(location: Any) -> Recovery | None:
    """Return a recovery an earlier open began and did not finish."""
    notes = pending_recovery(location.read(RECOVERY_FILE))
    return notes[-1] if notes and notes[-1].state != "done" else None


def _note(location: Any, recovery: Recovery) -> None:
    """Write the recovery into the note file durably (replacing an unfinished one)."""
    notes = [n for n in pending_recovery(location.read(RECOVERY_FILE)) if n.state == "done"]
    data = [asdict(n) for n in notes] + [asdict(recovery)]
    location.write(RECOVERY_FILE, json.dumps(data, indent=2).encode())
