"""Opening a local record after a power cut: back to the last readable version of a table.

Lance writes a version's data files, then its manifest, without fsync. After a power cut
the newest manifest of a table can be empty or torn, or name data files that never reached
the disk. Opening a record checks each table's newest version (its manifest parses, its
data files are there at their recorded sizes); a table whose newest versions are unreadable
goes back to the last readable one: the unreadable manifests are moved to `_damaged/` in the
table's directory (kept, not deleted), so Lance opens the good one and writes on from it.

What that loses is said, not guessed at: the batches that are no longer whole (tracklets
lost, or rows left without their lost ledger row) are taken out whole and named, so that
re-sending them stores them again (the edge journal replays those it still holds); if the
ledger itself went back, every batch acknowledged after its last readable version must be
re-sent (a re-send of one that is still there is a duplicate: re-sending too much is
harmless). The findings are logged,
kept in `.herdrecord.recovery.json`, and shown by `herdrecord check` until `--repair`.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lance

from herdrecord.schema import BATCH_TABLES

RECOVERY_FILE = ".herdrecord.recovery.json"
DAMAGED_DIR = "_damaged"
_U64_MAX = 2**64 - 1

log = logging.getLogger("herdrecord.recovery")


@dataclass(frozen=True)
class TableFallback:
    """One table taken back to its last readable version."""

    table: str
    unreadable: tuple[int, ...]  # versions whose manifest or data files are damaged
    now_at: int  # the version the table is at now
    written_at: str  # when that version was written (UTC, ISO)


@dataclass
class Recovery:
    """What opening a record after a power cut did, and what must be re-sent."""

    at: str
    fallbacks: list[TableFallback]
    resend_batches: list[str] = field(default_factory=list)
    resend_after: str | None = None  # the ledger went back: batches acknowledged after this

    def describe(self) -> str:
        """Return what happened and what to do, in a few lines."""
        lines = [
            f"{f.table}: newest version(s) {', '.join(map(str, f.unreadable))} unreadable "
            f"(a power cut?); back to version {f.now_at} of {f.written_at}"
            for f in self.fallbacks
        ]
        if self.resend_batches:
            lines.append(
                f"re-send {len(self.resend_batches)} batches, taken out because their rows "
                f"were lost: {', '.join(self.resend_batches[:20])}"
                + (" ..." if len(self.resend_batches) > 20 else "")
            )
        if self.resend_after:
            lines.append(
                f"re-send every batch acknowledged after {self.resend_after} (the ledger went "
                "back; a batch still held is reported duplicate)"
            )
        return "\n".join(lines)


def recover_torn_versions(path: Path, settings: Any) -> Recovery | None:
    """Take every table of the local record at `path` back to its last readable version if
    its newest is unreadable; return what was done, or None when every table was sound."""
    if not any(_newest_unreadable(table) for table in _tables(path)):
        return None
    from herdrecord.storage import LocalLocation

    lock = LocalLocation(path).acquire_lock(settings.lock_timeout_s)
    try:
        fallbacks = []
        for table in _tables(path):
            fallback = _fall_back(table)
            if fallback is not None:
                fallbacks.append(fallback)
        if not fallbacks:  # another process recovered it while this one waited for the lock
            return None
        recovery = Recovery(datetime.now(UTC).isoformat(timespec="seconds"), fallbacks)
        ledger_back = next((f for f in fallbacks if f.table == "batches"), None)
        if ledger_back is not None:
            recovery.resend_after = ledger_back.written_at
        recovery.resend_batches = _take_out_incomplete_batches(path)
        _remember(path, recovery)
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
            TableFallback(f["table"], tuple(f["unreadable"]), f["now_at"], f["written_at"])
            for f in item["fallbacks"]
        ]
        out.append(
            Recovery(item["at"], fallbacks, list(item["resend_batches"]), item["resend_after"])
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


def _readable(table: Path, version: int) -> bool:
    """Return whether a version's manifest parses and its data files are whole on disk."""
    try:
        dataset = lance.dataset(str(table), version=version)
        for fragment in dataset.get_fragments():
            for data_file in fragment.metadata.files:
                file = table / "data" / data_file.path
                size = data_file.file_size_bytes
                if not file.is_file() or (size is not None and file.stat().st_size != size):
                    return False
    except (OSError, ValueError, RuntimeError):
        return False
    return True


def _newest_unreadable(table: Path) -> bool:
    versions = _versions(table)
    return bool(versions) and not _readable(table, versions[0][0])


def _fall_back(table: Path) -> TableFallback | None:
    versions = _versions(table)
    unreadable: list[tuple[int, Path]] = []
    for version, manifest in versions:
        if _readable(table, version):
            break
        unreadable.append((version, manifest))
    else:
        raise OSError(f"{table.name}: no version of the table can be read")
    if not unreadable:
        return None
    damaged = table / DAMAGED_DIR
    damaged.mkdir(exist_ok=True)
    for _, manifest in unreadable:
        os.replace(manifest, damaged / manifest.name)
    (table / "_versions" / "latest_version_hint.json").unlink(missing_ok=True)
    good = lance.dataset(str(table))
    written = next(v["timestamp"] for v in good.versions() if v["version"] == good.version)
    return TableFallback(
        table=table.name.removesuffix(".lance"),
        unreadable=tuple(sorted(v for v, _ in unreadable)),
        now_at=int(good.version),
        written_at=_utc(written),
    )


def _take_out_incomplete_batches(path: Path) -> list[str]:
    """Remove, whole, every batch that is not whole any more: committed batches whose
    tracklets are not all there, and rows of batches whose ledger row was lost; return their
    ids (a re-send then stores them again). Runs under the writer lock, so no rows of a
    write in progress are among them."""
    import lancedb
    import pyarrow.compute as pc

    from herdrecord.store import sql_literal

    db = lancedb.connect(str(path))
    ledger = db.open_table("batches").to_lance().to_table(columns=["batch_id", "n_tracklets"])
    stored = Counter(
        db.open_table("tracklets")
        .to_lance()
        .to_table(columns=["batch_id"])
        .column("batch_id")
        .to_pylist()
    )
    committed = dict(
        zip(
            ledger.column("batch_id").to_pylist(),
            ledger.column("n_tracklets").to_pylist(),
            strict=True,
        )
    )
    short = {b for b, expected in committed.items() if stored.get(b, 0) < expected}
    for name in BATCH_TABLES:
        ids = db.open_table(name).to_lance().to_table(columns=["batch_id"]).column("batch_id")
        short |= set(pc.unique(ids).to_pylist()) - set(committed)
    if short:
        where = "batch_id IN (" + ", ".join(sql_literal(b) for b in sorted(short)) + ")"
        db.open_table("batches").delete(where)  # first: from here on the batch is not there
        for name in BATCH_TABLES:
            db.open_table(name).delete(where)
    return sorted(short)


def _remember(path: Path, recovery: Recovery) -> None:
    file = path / RECOVERY_FILE
    earlier = json.loads(file.read_text()) if file.exists() else []
    file.write_text(json.dumps([*earlier, asdict(recovery)], indent=2))


def _utc(value: Any) -> str:
    if isinstance(value, datetime):
        # Lance gives naive local time (datetime.fromtimestamp); astimezone reads it so.
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value)
