"""Backups of a record that stay consistent while ingest runs, and their restore.

`backup_record` holds the writer lock only while it reads every table's version and tags it
(milliseconds: ingest waits that long at most); the tags keep those versions from being
cleaned up while they are copied. Each table is then copied at its tagged version — batch
tables without rows of batches the ledger had not committed then — into `DEST/<table>.lance`
beside a `backup.json` manifest, and the tags are removed. The copy is itself a record:
`restore_record` copies it into place, rebuilds the re-ID index and checks it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import lance
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord._version import __version__
from herdrecord.errors import InvalidInput
from herdrecord.ops.check import CheckReport, repair_record
from herdrecord.store.record import Record, is_record, open_record
from herdrecord.store.schema import BATCH_TABLES

MANIFEST = "backup.json"


@dataclass(frozen=True)
class BackupReport:
    """What a backup holds."""

    source: str
    dest: str
    taken_at: str
    versions: dict[str, int]  # each table's version in the source
    rows: dict[str, int]  # rows copied per table
    batches: int
    bytes: int
    seconds: float


def backup_record(record: Record, dest: Path) -> BackupReport:
    """Copy a consistent snapshot of the record to `dest` (a new directory)."""
    started = time.perf_counter()
    dest = dest.expanduser().resolve()
    if dest.exists() and any(dest.iterdir()):
        raise InvalidInput(f"{dest} exists and is not empty; back up into a new directory")
    tag = f"herdrecord-backup-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    names = record.table_names()
    with record.writer():
        versions = {name: int(record.table(name).version) for name in names}
        for name in names:
            record.dataset(name).tags.create(tag, versions[name])
    staging = dest.with_name(dest.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    rows: dict[str, int] = {}
    try:
        ledger = record.dataset("batches").checkout_version(versions["batches"])
        committed = ledger.to_table(columns=["batch_id"]).column("batch_id")
        for name in names:
            source = record.dataset(name).checkout_version(versions[name])
            reader = source.to_batches()
            if name in BATCH_TABLES:
                reader = (
                    b.filter(pc.is_in(b.column("batch_id"), value_set=committed.combine_chunks()))
                    for b in reader
                )
            data = pa.RecordBatchReader.from_batches(source.schema, reader)
            copied = lance.write_dataset(data, str(staging / f"{name}.lance"), schema=source.schema)
            rows[name] = copied.count_rows()
    finally:
        for name in names:
            record.dataset(name).tags.delete(tag)
    report = BackupReport(
        source=str(record.path),
        dest=str(dest),
        taken_at=datetime.now(UTC).isoformat(),
        versions=versions,
        rows=rows,
        batches=rows.get("batches", 0),
        bytes=sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()),
        seconds=time.perf_counter() - started,
    )
    manifest = {
        "herdrecord": __version__,
        "schema_version": record.schema_version,
        **asdict(report),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if dest.exists():
        dest.rmdir()
    staging.rename(dest)
    return report


def restore_record(backup: Path, path: Path) -> CheckReport:
    """Restore the backup in `backup` to a new record at `path`; return its check."""
    backup = backup.expanduser().resolve()
    path = path.expanduser().resolve()
    if not (backup / MANIFEST).exists() or not is_record(backup):
        raise InvalidInput(f"{backup} is not a herdrecord backup (no {MANIFEST})")
    if path.exists() and any(path.iterdir()):
        raise InvalidInput(f"{path} exists and is not empty; restore into a new directory")
    staging = path.with_name(path.name + ".restoring")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(backup, staging, ignore=shutil.ignore_patterns(MANIFEST))
    if path.exists():
        path.rmdir()
    staging.rename(path)
    return repair_record(open_record(str(path)))  # rebuilds the re-ID index, then checks
