"""Schema 6: `events.event_key`, a client's own key for an event, so that a repeat is known."""

from __future__ import annotations

import pyarrow as pa

from herdrecord.store.migrations import MigrationContext

VERSION = 6
NAME = "event_keys"

EVENT_KEY = pa.field(
    "event_key",
    pa.string(),
    nullable=True,
    metadata={
        "doc": "the key the sender gave the event (unique per record: a repeat of the key is "
        "a duplicate, not stored), null when none was given"
    },
)


def apply(ctx: MigrationContext) -> None:
    """Add `event_key` to `events`, null for the events already there; a migration cut short
    after the column is added finishes with the stamp."""
    table = ctx.db.open_table("events")
    if "event_key" not in table.schema.names:
        table.add_columns(pa.schema([EVENT_KEY]))
    table.to_lance().update_schema_metadata(
        {"herdrecord.table": "events", "herdrecord.schema_version": str(VERSION)}
    )
