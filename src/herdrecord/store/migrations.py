"""Migrations: an explicit, ordered registry of record upgrades and the log of applied ones.

The migration modules live in the top-level `migrations/` folder of the source tree
(`0001_initial.py`, ...) and are shipped inside the wheel as `herdrecord/_migrations/`.
Their order is the `MIGRATIONS` tuple below, never a directory listing.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa

from herdrecord.errors import HerdrecordError
from herdrecord.store.schema import META_SCHEMA_VERSION, migrations_schema

MIGRATIONS: tuple[str, ...] = (
    "0001_initial",
    "0002_days_and_events",
    "0003_api_keys",
    "0004_link_confidence",
    "0005_key_devices",
    "0006_event_keys",
    "0007_identifiers",
)
"""Every migration, in the order it applies; the number in each name is its version."""


@dataclass(frozen=True)
class MigrationContext:
    """What a migration may use: the LanceDB connection and the record's provenance."""

    db: Any
    embedder_name: str
    embedder_dim: int
    embedder_metric: str
    behaviours: tuple[str, ...]
    farm_id: str
    now: datetime
    herdrecord_version: str

    def table_names(self) -> list[str]:
        """Return the names of the tables that exist in the record: that have a version (a
        creation killed midway leaves a directory LanceDB lists but cannot open)."""
        return [name for name in self.db.list_tables(limit=10_000).tables if _opens(self.db, name)]

    def create_table(self, name: str, schema: pa.Schema) -> None:
        """Create an empty table unless it exists; a creation killed midway starts over."""
        if not _opens(self.db, name):
            self.db.create_table(name, schema=schema, mode="overwrite")


def _opens(db: Any, name: str) -> bool:
    try:
        db.open_table(name)
    except ValueError:  # "Table 'name' was not found": no version was ever committed
        return False
    return True


@dataclass(frozen=True)
class AppliedMigration:
    """One entry of the applied-migrations log."""

    version: int
    name: str
    applied_at: datetime


def migrations_dir() -> Path:
    """Return the folder holding the migration modules (installed copy or source tree)."""
    installed = Path(__file__).parents[1] / "_migrations"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[3] / "migrations"


def load_migration(name: str) -> ModuleType:
    """Import one migration module by its registry name."""
    path = migrations_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"herdrecord._migration_{name}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise HerdrecordError(
            f"migration {name} is missing from {path.parent}; reinstall herdrecord"
        )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = int(name.split("_", 1)[0])
    if getattr(module, "VERSION", None) != expected:
        raise HerdrecordError(f"migration {name} declares VERSION {module.VERSION}, not {expected}")
    return module


def latest_version() -> int:
    """Return the schema version the newest registered migration produces."""
    return int(MIGRATIONS[-1].split("_", 1)[0])


def applied(db: Any) -> list[AppliedMigration]:
    """Return the log of applied migrations, oldest first (empty for a new record)."""
    if "migrations" not in list(db.list_tables(limit=10_000).tables):
        return []
    rows = db.open_table("migrations").to_arrow().sort_by("version").to_pylist()
    return [AppliedMigration(r["version"], r["name"], r["applied_at"]) for r in rows]


def apply_pending(ctx: MigrationContext) -> list[AppliedMigration]:
    """Apply every migration newer than the record's log, in order; return what was applied."""
    db = ctx.db
    ctx.create_table("migrations", migrations_schema())
    done = {m.version for m in applied(db)}
    if done and _schema_version(db) < max(done):
        # A run killed between a migration's log row and its version stamp: finish it.
        _set_schema_version(db, max(done))
    log = db.open_table("migrations")
    result = []
    for name in MIGRATIONS:
        version = int(name.split("_", 1)[0])
        if version in done:
            continue
        module = load_migration(name)
        module.apply(ctx)
        now = datetime.now(UTC)
        log.add(
            pa.table(
                {
                    "version": [version],
                    "name": [name],
                    "applied_at": [now],
                    "herdrecord_version": [ctx.herdrecord_version],
                },
                schema=log.schema,
            )
        )
        _set_schema_version(db, version)
        result.append(AppliedMigration(version, name, now))
    return result


def _schema_version(db: Any) -> int:
    rows = db.open_table("metadata").to_lance().to_table(filter=f"key = '{META_SCHEMA_VERSION}'")
    return int(json.loads(rows.column("value")[0].as_py())) if rows.num_rows else 0


def _set_schema_version(db: Any, version: int) -> None:
    table = db.open_table("metadata")
    row = pa.table(
        {"key": [META_SCHEMA_VERSION], "value": [json.dumps(version)]}, schema=table.schema
    )
    # One merge is one commit: the record never lacks a schema version, even after a crash.
    table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(row)


def check_registry() -> None:
    """Fail if the registry has gaps, duplicates or is out of order."""
    versions = [int(name.split("_", 1)[0]) for name in MIGRATIONS]
    if versions != list(range(1, len(versions) + 1)):
        raise HerdrecordError(f"migration registry is not 1..n without gaps: {versions}")
