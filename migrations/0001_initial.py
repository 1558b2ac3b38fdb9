"""Create every table of a record at schema 1 and write its metadata."""

from __future__ import annotations

import json

import pyarrow as pa

from herdrecord.store.migrations import MigrationContext
from herdrecord.store.schema import (
    META_BEHAVIOURS,
    META_CREATED_AT,
    META_CREATED_BY,
    META_EMBEDDER,
    META_FARM_ID,
    SCHEMA_VERSION,
    UTC_TIME,
    table_schemas,
)

VERSION = 1
NAME = "initial"

# This migration must always build schema 1, whatever `herdrecord.store.schema` says today. Tables
# that changed after schema 1 are frozen below as they were; the others still come from
# `herdrecord.store.schema`. Before a change to another table ships, freeze its schema-1 shape here.
ADDED_LATER = frozenset({"days", "api_keys"})  # tables created by later migrations
COLUMNS_ADDED_LATER = {  # columns added to schema-1 tables by later migrations
    "tracklets": ("descriptor", "descriptor_weight"),
    "observations": ("thin_s",),
}


def _events_v1() -> pa.Schema:
    def f(name: str, type_: pa.DataType, nullable: bool, doc: str) -> pa.Field:
        return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})

    return pa.schema(
        [
            f("event_id", pa.string(), False, "unique id"),
            f("animal_id", pa.string(), False, "animal"),
            f("kind", pa.string(), False, "lameness, diagnosis, treatment, weight, move, ..."),
            f("at", UTC_TIME, False, "when it happened, UTC"),
            f("value", pa.float64(), True, "score, kg, dose ... by kind"),
            f("scale", pa.string(), True, "scale of a score, e.g. 0-3"),
            f("code", pa.string(), True, "diagnosis / product code"),
            f("note", pa.string(), True, "free text"),
            f("author", pa.string(), False, "who recorded it"),
            f("recorded_at", UTC_TIME, False, "when it was recorded, UTC"),
            f("supersedes", pa.string(), True, "event_id this row corrects"),
        ]
    ).with_metadata({"herdrecord.table": "events", "herdrecord.schema_version": "1"})


def schemas_v1(dim: int) -> dict[str, pa.Schema]:
    """Return the table schemas of schema 1."""
    schemas = {}
    for name, schema in table_schemas(dim).items():
        if name in ADDED_LATER:
            continue
        for column in COLUMNS_ADDED_LATER.get(name, ()):
            schema = schema.remove(schema.get_field_index(column))
        schemas[name] = schema.with_metadata(
            {**(schema.metadata or {}), b"herdrecord.schema_version": b"1"}
        )
    schemas["events"] = _events_v1()
    assert SCHEMA_VERSION >= VERSION
    return schemas


def apply(ctx: MigrationContext) -> None:
    """Create the tables of schema 1 (empty) and the record's metadata rows."""
    for name, schema in schemas_v1(ctx.embedder_dim).items():
        if name != "migrations":
            ctx.create_table(name, schema)
    metadata = {
        META_EMBEDDER: {
            "name": ctx.embedder_name,
            "dim": ctx.embedder_dim,
            "metric": ctx.embedder_metric,
        },
        META_BEHAVIOURS: list(ctx.behaviours),
        META_FARM_ID: ctx.farm_id,
        META_CREATED_AT: ctx.now.isoformat(),
        META_CREATED_BY: ctx.herdrecord_version,
    }
    table = ctx.db.open_table("metadata")
    table.add(
        pa.table(
            {
                "key": list(metadata),
                "value": [json.dumps(value) for value in metadata.values()],
            },
            schema=table.schema,
        )
    )
