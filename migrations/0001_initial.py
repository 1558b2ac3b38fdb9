"""Create every table of a record at schema 1 and write its metadata."""

from __future__ import annotations

import json

import pyarrow as pa

from herdrecord.migrations import MigrationContext
from herdrecord.schema import (
    META_BEHAVIOURS,
    META_CREATED_AT,
    META_CREATED_BY,
    META_EMBEDDER,
    META_FARM_ID,
    table_schemas,
)

VERSION = 1
NAME = "initial"

# This migration builds the tables from `herdrecord.schema` as they are today, which is right
# only while schema 1 is the newest. Before a change to schema.py ships, freeze the schema-1
# shapes here and write 0002 to move records from them to the new ones.


def apply(ctx: MigrationContext) -> None:
    """Create the tables of schema 1 (empty) and the record's metadata rows."""
    existing = set(ctx.table_names())
    for name, schema in table_schemas(ctx.embedder_dim).items():
        if name not in existing and name != "migrations":
            ctx.db.create_table(name, schema=schema)
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
