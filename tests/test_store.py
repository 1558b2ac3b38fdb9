"""Creating, opening and migrating records; schema snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from herdrecord.config import Settings
from herdrecord.errors import MigrationRequired, RecordExists, RecordNotFound, SchemaTooNew
from herdrecord.migrations import MIGRATIONS, applied, check_registry, load_migration
from herdrecord.schema import SCHEMA_VERSION, snapshot_files, table_schemas
from herdrecord.store import Record, create_record, migrate_record, open_record

ROOT = Path(__file__).resolve().parents[1]


def test_init_creates_every_table_with_its_schema(record: Record) -> None:
    names = set(record.db.list_tables(limit=100).tables)
    expected = table_schemas(384)
    assert names == set(expected)
    for name, schema in expected.items():
        assert record.table(name).schema.remove_metadata() == schema.remove_metadata(), name
    assert record.embedder.name == "dinov3-vits16"
    assert record.embedder.dim == 384
    assert record.schema_version == SCHEMA_VERSION
    assert "lying_lateral" in record.behaviours


def test_samples_store_float16_embeddings_of_the_record_dimension(
    tmp_path: Path, settings: Settings
) -> None:
    record = create_record(str(tmp_path / "r"), settings, embedder_dim=16)
    assert record.table("samples").schema.field("embedding").type == pa.list_(pa.float16(), 16)


def test_init_refuses_an_existing_record(record: Record, settings: Settings) -> None:
    with pytest.raises(RecordExists):
        create_record(str(record.path), settings)


def test_opening_a_missing_record_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(RecordNotFound, match="herdrecord init"):
        open_record(str(tmp_path / "nothing"))


def _set_version(record: Record, version: int) -> None:
    row = pa.table({"key": ["schema_version"], "value": [json.dumps(version)]})
    table = record.table("metadata")
    table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(row)


def test_a_record_from_a_newer_herdrecord_is_refused_clearly(record: Record) -> None:
    _set_version(record, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNew) as raised:
        open_record(str(record.path))
    assert str(raised.value) == (
        f"record {record.path} was written by schema {SCHEMA_VERSION + 1}; this herdrecord "
        f"reads up to {SCHEMA_VERSION} — upgrade herdrecord"
    )


def test_an_older_record_asks_for_migration(record: Record) -> None:
    _set_version(record, 0)
    with pytest.raises(MigrationRequired, match="herdrecord migrate"):
        open_record(str(record.path))


def test_migrate_logs_what_it_applied_and_is_idempotent(record: Record, settings: Settings) -> None:
    log = applied(record.db)
    assert [(m.version, m.name) for m in log] == [(1, "0001_initial")]
    assert migrate_record(str(record.path), settings) == []
    assert len(applied(record.db)) == 1


def test_migration_registry_is_ordered_without_gaps() -> None:
    check_registry()
    for name in MIGRATIONS:
        assert int(name[:4]) == load_migration(name).VERSION
    on_disk = sorted(p.stem for p in (ROOT / "migrations").glob("[0-9]*.py"))
    assert on_disk == list(MIGRATIONS), "every migration file must be registered, in order"


def test_schema_snapshots_match_the_code() -> None:
    for name, text in snapshot_files().items():
        path = ROOT / "schemas" / name
        assert path.exists(), f"schemas/{name} missing: run `make schemas`"
        assert path.read_text() == text, f"schemas/{name} drifted from the code: run `make schemas`"


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and len(field.description) > 20, name


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"HERDRECORD_{name.upper()}" in readme, name
