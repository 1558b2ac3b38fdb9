"""Record: one herd's store, a LanceDB directory with its metadata; the one write path."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lance
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord._version import __version__
from herdrecord.config import Settings
from herdrecord.errors import (
    HerdrecordError,
    InvalidInput,
    MigrationRequired,
    RecordExists,
    RecordNotFound,
    SchemaTooNew,
)
from herdrecord.store.location import Location, Lock, location_of
from herdrecord.store.migrations import (
    AppliedMigration,
    MigrationContext,
    apply_pending,
    latest_version,
)
from herdrecord.store.recovery import Recovery, recover_torn_versions
from herdrecord.store.schema import (
    BATCH_TABLES,
    DEFAULT_BEHAVIOURS,
    DEFAULT_EMBEDDER_DIM,
    DEFAULT_EMBEDDER_METRIC,
    DEFAULT_EMBEDDER_NAME,
    DEFAULT_FARM_ID,
    META_BEHAVIOURS,
    META_EMBEDDER,
    META_FARM_FROM_FIRST_BATCH,
    META_FARM_ID,
    META_SCHEMA_VERSION,
    SCHEMA_VERSION,
)
from herdrecord.store.sql import sql_literal

if TYPE_CHECKING:  # LanceDB is imported only by the commands that write
    from lancedb.db import DBConnection
    from lancedb.table import Table

PENDING_FILE = ".herdrecord.pending.json"  # batch ids being written; cleared after the ledger
LINK_RUN_FILE = ".herdrecord.link-run.json"  # a link run's undo, until its links are written
INDEX_FILE = "pool.faiss"  # the re-ID pool's FAISS index, a stamped cache (poolindex.py)


@dataclass(frozen=True)
class EmbedderInfo:
    """The embedder a record's vectors come from."""

    name: str
    dim: int
    metric: str
    weights_sha256: str | None = None  # the model's weights, once pinned
    weights_required: bool = False  # batches must state the weights (after a reembed)


@dataclass(frozen=True)
class TableInfo:
    """What one table holds on disk."""

    name: str
    rows: int
    bytes_on_disk: int
    version: int
    fragments: int


class Record:
    """One herd's record: LanceDB tables in a directory, opened with `open_record`."""

    def __init__(
        self,
        location: Location,
        settings: Settings,
        db: DBConnection | None,
        metadata: dict[str, Any],
    ) -> None:
        self.location = location
        self.settings = settings
        self._db = db  # a LanceDB connection, made on first need (None until then)
        self.metadata = metadata
        self.recovery: Recovery | None = None  # what opening did after a power cut
        self._locks: list[Lock] = []  # the writer locks this process holds on it

    @property
    def uri(self) -> str:
        """Return the record's location: a directory or an s3:// URI."""
        return self.location.uri

    @property
    def path(self) -> Path:
        """Return the record's directory; a clear error for a record on object storage."""
        path = self.location.local_path
        if path is None:
            raise InvalidInput(
                f"{self.uri} is on object storage; this needs a record in a local directory"
            )
        return path

    @property
    def schema_version(self) -> int:
        """Return the schema version the record is at."""
        return int(self.metadata[META_SCHEMA_VERSION])

    @property
    def embedder(self) -> EmbedderInfo:
        """Return the embedder the record's vectors come from."""
        spec = self.metadata[META_EMBEDDER]
        return EmbedderInfo(
            name=spec["name"],
            dim=int(spec["dim"]),
            metric=spec["metric"],
            weights_sha256=spec.get("weights_sha256"),
            weights_required=bool(spec.get("weights_required", False)),
        )

    def pin_embedder(self, weights_sha256: str) -> None:
        """Pin the record's embedder to these weights (a record made without them); from
        then on a batch stating other weights is refused. Pinning other weights than the
        pinned ones is refused: that is a new model, which `reembed` moves a record to."""
        if not re.fullmatch("[0-9a-f]{64}", weights_sha256):
            raise InvalidInput("weights_sha256 must be 64 hex digits")
        with self.writer():
            table = self.table("metadata")
            rows = table.to_lance().to_table(filter=f"key = '{META_EMBEDDER}'").to_pylist()
            spec = json.loads(rows[0]["value"])
            pinned = spec.get("weights_sha256")
            if pinned == weights_sha256:
                return
            if pinned is not None:
                raise InvalidInput(
                    f"the record's {spec['name']} is pinned to weights {pinned[:12]}, not "
                    f"{weights_sha256[:12]}: move it to the new model with herdrecord reembed"
                )
            spec["weights_sha256"] = weights_sha256
            self._set_metadata(META_EMBEDDER, spec)

    def set_farm_id(self, farm_id: str) -> None:
        """Name the farm the record belongs to (a record made with the default id); refused
        while its ledger holds batches of another farm."""
        check_farm_id(farm_id)
        with self.writer():
            ledger = self.dataset("batches").to_table(columns=["farm_id"])
            others = sorted(set(ledger.column("farm_id").to_pylist()) - {farm_id})
            if others:
                raise InvalidInput(
                    f"the record holds batches of farm {', '.join(others)}: it cannot become "
                    f"farm {farm_id!r}"
                )
            self._set_metadata(META_FARM_ID, farm_id)
            self._set_metadata(META_FARM_FROM_FIRST_BATCH, False)

    def adopt_farm(self, farm_id: str) -> None:
        """Take the farm of the record's first accepted batch (a record made without a farm);
        the caller holds the writer lock. From now on batches of other farms are refused."""
        self.ensure_writer()
        check_farm_id(farm_id)
        self._set_metadata(META_FARM_ID, farm_id)
        self._set_metadata(META_FARM_FROM_FIRST_BATCH, False)

    def set_metadata(self, key: str, value: Any) -> None:
        """Write one metadata value (JSON) in place; the caller holds the writer lock."""
        self.ensure_writer()
        self._set_metadata(key, value)

    def _set_metadata(self, key: str, value: Any) -> None:
        """Write one metadata value (JSON) in place; the caller holds the writer lock."""
        table = self.table("metadata")
        row = pa.table({"key": [key], "value": [json.dumps(value)]}, schema=table.schema)
        table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(
            row
        )
        self.metadata = {**self.metadata, key: value}

    @property
    def behaviours(self) -> tuple[str, ...]:
        """Return the record's behaviour vocabulary."""
        return tuple(self.metadata[META_BEHAVIOURS])

    @property
    def farm_id(self) -> str:
        """Return the farm the record belongs to (`DEFAULT_FARM_ID` while it waits for its
        first batch to name one: see `farm_from_first_batch`)."""
        return str(self.metadata[META_FARM_ID])

    @property
    def farm_from_first_batch(self) -> bool:
        """Whether the record was made without a farm and takes its first accepted batch's."""
        return bool(self.metadata.get(META_FARM_FROM_FIRST_BATCH, False))

    @property
    def db(self) -> DBConnection:
        """Return the record's LanceDB connection (writers need it; readers use `dataset`)."""
        if self._db is None:
            self._db = self.location.connect()
        return self._db

    def table(self, name: str) -> Table:
        """Return a LanceDB table of the record (to write to it)."""
        table: Table = self.db.open_table(name)
        return table

    def table_names(self) -> list[str]:
        """Return the names of the record's tables, sorted."""
        return self.location.table_names()

    def dataset(self, name: str) -> lance.LanceDataset:
        """Return a table's Lance dataset at its newest version, to read (without LanceDB,
        which takes about a second to import)."""
        return open_dataset(self.location, name)

    def committed_batch_ids(self) -> pa.Array:
        """Return the ids of every batch in the ledger (the visible ones)."""
        ledger = self.dataset("batches").to_table(columns=["batch_id"])
        return ledger.column("batch_id").combine_chunks()

    def read_visible(
        self, name: str, columns: list[str] | None = None, where: str | None = None
    ) -> pa.Table:
        """Return a table's rows (matching the Lance filter `where`, if given); for batch
        tables, only rows of committed batches.

        The rows are read once (with their batch_id) and the ledger after them, so a batch
        committed in between is shown whole and one a writer is still writing, or that a
        killed writer left behind, is never shown, whatever a concurrent writer does.
        """
        dataset = self.dataset(name)
        if name not in BATCH_TABLES:
            return dataset.to_table(columns=columns, filter=where)
        wanted = columns or dataset.schema.names
        read = wanted if "batch_id" in wanted else [*wanted, "batch_id"]
        rows = dataset.to_table(columns=read, filter=where)
        rows = rows.filter(pc.is_in(rows.column("batch_id"), value_set=self.committed_batch_ids()))
        return rows.select(wanted)

    def pending_batch_ids(self) -> list[str]:
        """Return the batch ids a writer announced and has not yet cleared."""
        text = self.location.read(PENDING_FILE)
        return [] if text is None else list(json.loads(text)["batch_ids"])

    def table_info(self) -> list[TableInfo]:
        """Return rows, bytes on disk, version and fragments of every table."""
        infos = []
        for name in self.table_names():
            dataset = self.dataset(name)
            infos.append(
                TableInfo(
                    name=name,
                    rows=dataset.count_rows(),
                    bytes_on_disk=self.location.size_under(f"{name}.lance"),
                    version=dataset.version,
                    fragments=len(dataset.get_fragments()),
                )
            )
        return infos

    @contextlib.contextmanager
    def writer(self) -> Iterator[Lock]:
        """Hold the record's single-writer lock; recover an interrupted batch on entry."""
        lock = self.location.acquire_lock(self.settings.lock_timeout_s)
        self._locks.append(lock)
        try:
            recover_interrupted(self)
            yield lock
        finally:
            self._locks.remove(lock)
            lock.release()

    def ensure_writer(self) -> None:
        """Raise if this process's writer lock on the record was lost (a lease on object
        storage that could not be renewed); called before each commit."""
        for lock in self._locks:
            lock.ensure_held()


def recover_interrupted(record: Record) -> list[str]:
    """Undo what a killed writer left half done (runs on taking the writer lock, before
    anything else is written): a link run's animals and pool without its links; rows of
    announced batches that never reached the ledger. Return the ids of those batches."""
    undo_unfinished_link_run(record)
    pending = record.pending_batch_ids()
    if not pending:
        return []
    committed = set(record.committed_batch_ids().to_pylist())
    orphans = [batch_id for batch_id in pending if batch_id not in committed]
    if orphans:
        where = "batch_id IN (" + ", ".join(sql_literal(b) for b in orphans) + ")"
        for name in BATCH_TABLES:
            record.table(name).delete(where)
    record.location.delete(PENDING_FILE)
    return orphans


def note_link_run(record: Record, new_animals: list[str]) -> None:
    """Note durably, before a link run writes its animals and pool, what undoes them if it
    is killed before its links land: the versions of `links` and `pool`, its new animals."""
    note = {
        "links_version": int(record.table("links").version),
        "pool_version": int(record.table("pool").version),
        "new_animals": new_animals,
    }
    record.location.write(LINK_RUN_FILE, json.dumps(note).encode())


def link_run_done(record: Record) -> None:
    """Clear the note once the run's links are written."""
    record.location.delete(LINK_RUN_FILE)


def undo_unfinished_link_run(record: Record) -> bool:
    """If a link run was killed after writing animals or pool and before its links, take
    its new provisional animals out, put the pool back and drop the index; return whether
    there was one. A run whose links landed only lost its note's removal."""
    text = record.location.read(LINK_RUN_FILE)
    if text is None:
        return False
    note = json.loads(text)
    if int(record.table("links").version) == note["links_version"]:
        if note["new_animals"]:
            where = "animal_id IN (" + ", ".join(map(sql_literal, note["new_animals"])) + ")"
            record.table("animals").delete(where)
        pool = record.table("pool")
        if int(pool.version) != note["pool_version"]:
            pool.restore(note["pool_version"])
        record.location.delete(INDEX_FILE)  # rebuilt from the pool by the next reader
    record.location.delete(LINK_RUN_FILE)
    return True


FARM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_farm_id(farm_id: str) -> None:
    """Refuse a farm id that could not name a directory, an S3 prefix or a hive partition."""
    if not FARM_ID.fullmatch(farm_id):
        raise InvalidInput(
            f"farm id {farm_id!r}: use letters, digits, '.', '_' and '-' (starting with a "
            "letter or digit, at most 128)"
        )


def open_dataset(location: Location, name: str) -> lance.LanceDataset:
    """Return one of a record's tables as a Lance dataset at its newest version."""
    return lance.dataset(location.table_uri(name), storage_options=location.storage_options)


def _read_metadata(location: Location) -> dict[str, Any]:
    rows = open_dataset(location, "metadata").to_table().to_pylist()
    return {row["key"]: json.loads(row["value"]) for row in rows}


def is_record(path: Path | Location) -> bool:
    """Return whether a directory (or any location) holds a herdrecord record."""
    if isinstance(path, Path):
        return (path / "metadata.lance").is_dir()
    return path.has_table("metadata")


def create_record(
    uri: str,
    settings: Settings,
    *,
    farm_id: str | None = None,
    embedder_name: str = DEFAULT_EMBEDDER_NAME,
    embedder_dim: int = DEFAULT_EMBEDDER_DIM,
    behaviours: tuple[str, ...] = DEFAULT_BEHAVIOURS,
) -> Record:
    """Create a new, empty record at `uri` (a directory or s3:// URI) and return it opened.

    Without `farm_id` the record takes the farm of its first accepted batch; with one it
    refuses every batch of another farm."""
    location = location_of(uri, settings.storage_options)
    if is_record(location):
        raise RecordExists(location.uri)
    if not location.is_empty():
        raise InvalidInput(f"{location.uri} exists and is not empty; choose a new place")
    if not behaviours or len(set(behaviours)) != len(behaviours):
        raise InvalidInput("the behaviour vocabulary must be non-empty and without repeats")
    check_farm_id(farm_id or DEFAULT_FARM_ID)
    location.prepare()
    provenance = _Provenance(
        embedder_name, embedder_dim, DEFAULT_EMBEDDER_METRIC, behaviours, farm_id or DEFAULT_FARM_ID
    )
    _migrate_locked(location, location.connect(), provenance, settings)
    record = open_record(location.uri, settings)
    if farm_id is None:
        with record.writer():
            record.set_metadata(META_FARM_FROM_FIRST_BATCH, True)
    return record


def open_record(uri: str, settings: Settings | None = None, *, recover: bool = True) -> Record:
    """Open an existing record; fail clearly if it is missing, too new or needs migrating.

    A local record is first recovered if a power cut damaged its newest versions; readers
    that must never write (fleet reads, the SQL sandbox) pass `recover=False`."""
    settings = settings or Settings()
    location = location_of(uri, settings.storage_options)
    if not is_record(location):
        raise RecordNotFound(location.uri)
    recovery = None
    # An object store's PUT is durable when it returns: nothing to recover there.
    if recover and location.local_path is not None:
        recovery = recover_torn_versions(location.local_path, settings)
    metadata = _read_metadata(location)
    found = int(metadata.get(META_SCHEMA_VERSION, 0))
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(location.uri, found, SCHEMA_VERSION)
    if found < SCHEMA_VERSION:
        raise MigrationRequired(location.uri, found, SCHEMA_VERSION)
    record = Record(location, settings, None, metadata)
    record.recovery = recovery
    return record


def migrate_record(uri: str, settings: Settings) -> list[AppliedMigration]:
    """Apply the pending migrations of a record; return what was applied."""
    location = location_of(uri, settings.storage_options)
    if not is_record(location):
        raise RecordNotFound(location.uri)
    db = location.connect()
    metadata = _read_metadata(location)
    found = int(metadata.get(META_SCHEMA_VERSION, 0))
    if found > latest_version():
        raise SchemaTooNew(location.uri, found, latest_version())
    embedder = metadata.get(META_EMBEDDER)
    if embedder is None:
        raise HerdrecordError(f"{location.uri}: metadata lacks the embedder; the record is damaged")
    provenance = _Provenance(
        embedder["name"],
        int(embedder["dim"]),
        embedder["metric"],
        tuple(metadata[META_BEHAVIOURS]),
        str(metadata[META_FARM_ID]),
    )
    return _migrate_locked(location, db, provenance, settings)


@dataclass(frozen=True)
class _Provenance:
    embedder_name: str
    embedder_dim: int
    embedder_metric: str
    behaviours: tuple[str, ...]
    farm_id: str


def _migrate_locked(
    location: Location, db: Any, provenance: _Provenance, settings: Settings
) -> list[AppliedMigration]:
    """Apply pending migrations while holding the record's write lock."""
    lock = location.acquire_lock(settings.lock_timeout_s)
    try:
        ctx = MigrationContext(
            db=db,
            embedder_name=provenance.embedder_name,
            embedder_dim=provenance.embedder_dim,
            embedder_metric=provenance.embedder_metric,
            behaviours=provenance.behaviours,
            farm_id=provenance.farm_id,
            now=datetime.now(UTC),
            herdrecord_version=__version__,
        )
        return apply_pending(ctx)
    finally:
        lock.release()
