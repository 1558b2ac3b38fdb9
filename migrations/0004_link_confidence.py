"""Schema 4: `links.confidence`, the probability that a link is right (null on older links)."""

from __future__ import annotations

import pyarrow as pa

from herdrecord.store.migrations import MigrationContext

VERSION = 4
NAME = "link_confidence"

CONFIDENCE = pa.field(
    "confidence",
    pa.float32(),
    nullable=True,
    metadata={
        "doc": "probability that the link is right (calibrated on the record's own "
        "scores; 1 for answers and tag reads), null when unknown or not yet estimated"
    },
)


def apply(ctx: MigrationContext) -> None:
    """Add `confidence` to `links`, null for the links already there (a later relink fills
    it); a migration cut short after the column is added finishes with the stamp."""
    table = ctx.db.open_table("links")
    if "confidence" not in table.schema.names:
        table.add_columns(pa.schema([CONFIDENCE]))
    table.to_lance().update_schema_metadata(
        {"herdrecord.table": "links", "herdrecord.schema_version": str(VERSION)}
    )
