"""Schema 7: `identifiers`, the (scheme, id) pairs an animal is known by, with validity days.

The ear tag each animal carried (`animals.tag_id`) is copied in as scheme
`org.herdrecord.tag`, holding from the start; `animals.tag_id` stays, as the tag linking
bound the animal to.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from herdrecord.store.migrations import MigrationContext

VERSION = 7
NAME = "identifiers"
TAG_SCHEME = "org.herdrecord.tag"
RECORDED_BY = "migration 0007"

_UTC_TIME = pa.timestamp("us", tz="UTC")


def _field(name: str, type_: pa.DataType, nullable: bool, doc: str) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


# This migration's own frozen copy of the table it creates.
SCHEMA = pa.schema(
    [
        _field("animal_id", pa.string(), False, "the animal"),
        _field(
            "scheme",
            pa.string(),
            False,
            "who issues the id: an ICAR ADE scheme (eu.animalId, managementTag, ...) or "
            "org.herdrecord.tag for the ear tag the edge reads",
        ),
        _field("id", pa.string(), False, "the identifier under that scheme"),
        _field("valid_from", pa.date32(), True, "first day it holds; null: from the start"),
        _field("valid_to", pa.date32(), True, "last day it holds; null: it still holds"),
        _field("recorded_at", _UTC_TIME, False, "when it was recorded, UTC"),
        _field("recorded_by", pa.string(), False, "who recorded it"),
    ]
).with_metadata({"herdrecord.table": "identifiers", "herdrecord.schema_version": str(VERSION)})


def apply(ctx: MigrationContext) -> None:
    """Create `identifiers` and copy each animal's tag into it. A run cut short before the
    copy committed finds the table empty and copies again; after, it finds the copy and
    leaves it (one `add`: all of it or none)."""
    ctx.create_table("identifiers", SCHEMA)
    table = ctx.db.open_table("identifiers")
    if table.count_rows(f"recorded_by = '{RECORDED_BY}'") > 0:
        return
    animals = (
        ctx.db.open_table("animals")
        .to_lance()
        .to_table(columns=["animal_id", "tag_id", "status"], filter="tag_id IS NOT NULL")
    )
    rows = [r for r in animals.to_pylist() if r["status"] != "merged" and r["tag_id"].strip()]
    if rows:
        now: datetime = ctx.now
        table.add(
            pa.table(
                {
                    "animal_id": [r["animal_id"] for r in rows],
                    "scheme": [TAG_SCHEME] * len(rows),
                    "id": [r["tag_id"].strip() for r in rows],
                    "valid_from": pa.nulls(len(rows), pa.date32()),
                    "valid_to": pa.nulls(len(rows), pa.date32()),
                    "recorded_at": pa.array([now] * len(rows), _UTC_TIME),
                    "recorded_by": [RECORDED_BY] * len(rows),
                },
                schema=SCHEMA,
            )
        )
