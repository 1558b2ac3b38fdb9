"""Creating, opening and migrating records; schema snapshots."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from herdrecord.config import Settings
from herdrecord.errors import MigrationRequired, RecordExists, RecordNotFound, SchemaTooNew
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.store.migrations import MIGRATIONS, applied, check_registry, load_migration
from herdrecord.store.record import Record, create_record, migrate_record, open_record
from herdrecord.store.schema import SCHEMA_VERSION, migrations_schema, table_schemas
from herdrecord.tools.snapshots import all_snapshot_files

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
    assert [(m.version, m.name) for m in log] == [
        (1, "0001_initial"),
        (2, "0002_days_and_events"),
        (3, "0003_api_keys"),
        (4, "0004_link_confidence"),
        (5, "0005_key_devices"),
        (6, "0006_event_keys"),
        (7, "0007_identifiers"),
    ]
    assert migrate_record(str(record.path), settings) == []
    assert len(applied(record.db)) == 7


def test_a_schema_1_record_migrates_to_the_current_schema_keeping_its_rows(
    tmp_path: Path, settings: Settings, batch_factory: Callable[..., dict[str, Any]]
) -> None:
    import lancedb

    from herdrecord.store.migrations import MigrationContext, apply_pending

    path = tmp_path / "old"
    path.mkdir()
    db = lancedb.connect(str(path))
    ctx = MigrationContext(
        db,
        "dinov3-vits16",
        384,
        "cosine",
        ("standing", "lying_sternal"),
        "farm-a",
        datetime.now(UTC),
        "0.0",
    )
    db.create_table("migrations", schema=migrations_schema())
    load_migration("0001_initial").apply(ctx)
    db.open_table("migrations").add(
        pa.table(
            {
                "version": [1],
                "name": ["0001_initial"],
                "applied_at": [datetime.now(UTC)],
                "herdrecord_version": ["0.0"],
            },
            schema=migrations_schema(),
        )
    )
    _set_version(Record(path, settings, db, {}), 1)
    old_event = {
        "event_id": "e1",
        "animal_id": "A1",
        "kind": "weight",
        "at": datetime.now(UTC),
        "value": 31.5,
        "scale": None,
        "code": None,
        "note": None,
        "author": "scale",
        "recorded_at": datetime.now(UTC),
        "supersedes": None,
    }
    events = db.open_table("events")
    assert "unit" not in events.schema.names
    events.add(pa.Table.from_pylist([old_event], schema=events.schema))
    # Schema-1 rows of a batch: today's rows less the columns schema 2 added.
    today = create_record(str(tmp_path / "today"), settings)
    ingest(today, [parse_json(json.dumps(batch_factory(n_observations=30)).encode(), "b")])
    for name in ("tracklets", "samples", "observations"):
        v1 = db.open_table(name)
        v1.add(today.table(name).to_arrow().select(v1.schema.names).cast(v1.schema))
    with pytest.raises(MigrationRequired):
        open_record(str(path), settings)

    assert [m.version for m in migrate_record(str(path), settings)] == [2, 3, 4, 5, 6, 7]
    assert [m.version for m in apply_pending(ctx)] == []
    migrated = open_record(str(path), settings)
    for name, schema in table_schemas(384).items():
        assert migrated.table(name).schema.remove_metadata() == schema.remove_metadata(), name
    (row,) = migrated.table("events").to_arrow().to_pylist()
    assert row["value"] == 31.5 and row["author"] == "scale" and row["unit"] is None
    assert row["event_key"] is None  # events recorded before keys had none
    # The migration derives what ingest now stores: descriptors and thinning levels.
    for name, key, derived in (
        ("tracklets", ["track_id"], ["descriptor", "descriptor_weight"]),
        ("observations", ["track_id", "t"], ["thin_s"]),
    ):
        got = migrated.table(name).to_arrow().sort_by([(k, "ascending") for k in key])
        want = today.table(name).to_arrow().sort_by([(k, "ascending") for k in key])
        for column in derived:
            # From float16 samples rather than the sent float32 ones: equal to ~1e-3.
            assert np.allclose(
                np.asarray(got.column(column).to_pylist(), dtype=float),
                np.asarray(want.column(column).to_pylist(), dtype=float),
                atol=2e-3,
            ), column


def test_migration_registry_is_ordered_without_gaps() -> None:
    check_registry()
    for name in MIGRATIONS:
        assert int(name[:4]) == load_migration(name).VERSION
    on_disk = sorted(p.stem for p in (ROOT / "migrations").glob("[0-9]*.py"))
    assert on_disk == list(MIGRATIONS), "every migration file must be registered, in order"


def test_schema_snapshots_match_the_code() -> None:
    for name, text in all_snapshot_files().items():
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
