"""Schema 5: `api_keys.devices`, the devices an edge key may upload for (null: any)."""

from __future__ import annotations

import pyarrow as pa

from herdrecord.store.migrations import MigrationContext

VERSION = 5
NAME = "key_devices"

DEVICES = pa.field(
    "devices",
    pa.list_(pa.string()),
    nullable=True,
    metadata={
        "doc": "the devices an edge key may upload batches for; null or empty for a key "
        "made before keys named them (it may upload for any device)"
    },
)


def apply(ctx: MigrationContext) -> None:
    """Add `devices` to `api_keys`, null for the keys already there; a migration cut short
    after the column is added finishes with the stamp."""
    table = ctx.db.open_table("api_keys")
    if "devices" not in table.schema.names:
        table.add_columns(pa.schema([DEVICES]))
    table.to_lance().update_schema_metadata(
        {"herdrecord.table": "api_keys", "herdrecord.schema_version": str(VERSION)}
    )
