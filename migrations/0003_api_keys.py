"""Schema 3: the `api_keys` table, the principals the HTTP service lets in (hashed keys)."""

from __future__ import annotations

from herdrecord.store.migrations import MigrationContext
from herdrecord.store.schema import api_keys_schema

VERSION = 3
NAME = "api_keys"


def apply(ctx: MigrationContext) -> None:
    """Create `api_keys`, empty (a record made before it has no keys yet)."""
    schema = api_keys_schema().with_metadata(
        {"herdrecord.table": "api_keys", "herdrecord.schema_version": str(VERSION)}
    )
    ctx.create_table("api_keys", schema)
