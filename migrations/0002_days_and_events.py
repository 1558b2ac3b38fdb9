"""Schema 2: the `days` table (materialised animal-days) and richer health events."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from herdrecord.migrations import MigrationContext
from herdrecord.schema import days_schema, events_schema

VERSION = 2
NAME = "days_and_events"

EVENT_COLUMNS_ADDED = ("unit", "result", "withdrawal_days", "retracted")


def apply(ctx: MigrationContext) -> None:
    """Add the event columns of schema 2 (null in old rows) and create `days` (empty).

    Each step checks what is already there, so a migration cut short is finished by the
    next `herdrecord migrate`.
    """
    events = ctx.db.open_table("events")
    target = events_schema()
    missing = [target.field(n) for n in EVENT_COLUMNS_ADDED if n not in events.schema.names]
    if missing:
        events.add_columns(pa.schema(missing))
    _stamp(events, "events")
    if "days" not in ctx.table_names():
        ctx.db.create_table("days", schema=_with_stamp(days_schema(), "days"))


def _with_stamp(schema: pa.Schema, name: str) -> pa.Schema:
    return schema.with_metadata(
        {"herdrecord.table": name, "herdrecord.schema_version": str(VERSION)}
    )


def _stamp(table: Any, name: str) -> None:
    table.to_lance().update_schema_metadata(
        {"herdrecord.table": name, "herdrecord.schema_version": str(VERSION)}
    )
