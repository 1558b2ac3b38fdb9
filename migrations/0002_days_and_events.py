"""Schema 2: the `days` table (materialised animal-days), richer health events, tracklet
descriptors stored with the tracklet, and the thinning level of each observation row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.store.migrations import MigrationContext
from herdrecord.store.schema import days_schema, events_schema, table_schemas

VERSION = 2
NAME = "days_and_events"

COLUMNS_ADDED = {
    "events": ("unit", "result", "withdrawal_days", "retracted"),
    "tracklets": ("descriptor", "descriptor_weight"),
    "observations": ("thin_s",),
}


def apply(ctx: MigrationContext) -> None:
    """Add the schema-2 columns (filled from the rows already there) and create `days`.

    Each step checks what is already done, so a migration cut short is finished by the next
    `herdrecord migrate`.
    """
    target = table_schemas(ctx.embedder_dim)
    target["events"] = events_schema()
    for name, columns in COLUMNS_ADDED.items():
        table = ctx.db.open_table(name)
        missing = [target[name].field(c) for c in columns if c not in table.schema.names]
        if missing:
            table.add_columns(pa.schema(missing))
    _fill_descriptors(ctx.db, ctx.embedder_dim)
    _fill_thinning_levels(ctx.db)
    for name in COLUMNS_ADDED:
        _stamp(ctx.db.open_table(name), name)
    ctx.create_table("days", _with_stamp(days_schema(), "days"))


def _fill_descriptors(db: Any, dim: int) -> None:
    """Compute each stored tracklet's descriptor from its samples, as ingest now does."""
    tracklets = db.open_table("tracklets")
    todo = tracklets.to_lance().to_table(
        columns=["device_id", "track_id"], filter="descriptor IS NULL"
    )
    if todo.num_rows == 0:
        return
    samples = (
        db.open_table("samples")
        .to_lance()
        .to_table(columns=["device_id", "track_id", "quality", "embedding"])
    )
    # Join the keys alone (Arrow joins cannot carry float16 vectors), then take the rows.
    keys = todo.append_column("row", pa.array(np.arange(todo.num_rows)))
    positions = samples.select(["device_id", "track_id"]).append_column(
        "position", pa.array(np.arange(samples.num_rows))
    )
    owned = positions.join(keys, ["device_id", "track_id"], join_type="inner")
    taken = samples.take(owned.column("position"))
    flat = taken.column("embedding").combine_chunks().flatten()
    descriptor, weight = quality_weighted_descriptors(
        np.array(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim),
        np.asarray(taken.column("quality").to_numpy(), dtype=np.float32),
        np.asarray(owned.column("row").to_numpy(), dtype=np.int64),
        todo.num_rows,
    )
    update = todo.append_column(
        "descriptor",
        pa.FixedSizeListArray.from_arrays(pa.array(descriptor.reshape(-1).astype(np.float16)), dim),
    ).append_column("descriptor_weight", pa.array(weight, pa.float32()))
    tracklets.merge_insert(["device_id", "track_id"]).when_matched_update_all().execute(update)


def _fill_thinning_levels(db: Any) -> None:
    """Compute the thinning level of each stored observation row, as ingest now does."""
    observations = db.open_table("observations")
    rows = observations.to_lance().to_table(
        columns=["device_id", "track_id", "t"], filter="thin_s IS NULL"
    )
    if rows.num_rows == 0:
        return
    starts = (
        db.open_table("tracklets").to_lance().to_table(columns=["device_id", "track_id", "start"])
    )
    starts = starts.append_column("owner", pa.array(np.arange(starts.num_rows)))
    rows = rows.join(starts, ["device_id", "track_id"], join_type="left outer").filter(
        pc.is_valid(pc.field("owner"))
    )
    micros = pa.timestamp("us", tz="UTC")
    level = thinning_levels(
        np.asarray(rows.column("owner").to_numpy(), dtype=np.int64),
        np.asarray(rows.column("t").cast(micros).cast(pa.int64()).to_numpy(), dtype=np.int64),
        np.asarray(starts.column("start").cast(micros).cast(pa.int64()).to_numpy(), np.int64),
    )
    update = rows.select(["device_id", "track_id", "t"]).append_column(
        "thin_s", pa.array(level, pa.int32())
    )
    # Rows with the same key (an edge that sent one instant twice) get one level.
    update = update.group_by(["device_id", "track_id", "t"]).aggregate([("thin_s", "max")])
    update = update.rename_columns(["device_id", "track_id", "t", "thin_s"])
    observations.merge_insert(["device_id", "track_id", "t"]).when_matched_update_all().execute(
        update
    )


def _with_stamp(schema: pa.Schema, name: str) -> pa.Schema:
    return schema.with_metadata(
        {"herdrecord.table": name, "herdrecord.schema_version": str(VERSION)}
    )


def _stamp(table: Any, name: str) -> None:
    table.to_lance().update_schema_metadata(
        {"herdrecord.table": name, "herdrecord.schema_version": str(VERSION)}
    )


# Frozen copies of the helpers this migration was written against (herdrecord 0.1, schema 2):
# a migration keeps running on old records forever, so it must not follow today's modules.
_THINNING_STEPS_S = (60, 120, 600, 1200, 3600)


def thinning_levels(owner: np.ndarray, t_us: np.ndarray, start_us: np.ndarray) -> np.ndarray:
    """Per observation row, the coarsest thinning step it survives (0 if none)."""
    n = len(owner)
    level = np.zeros(n, dtype=np.int32)
    if n == 0:
        return level
    order = np.lexsort((t_us, owner))
    o, t = owner[order], t_us[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = o[1:] != o[:-1]
    offset = t - start_us[o]
    for step in _THINNING_STEPS_S:
        slot = offset // (step * 1_000_000)
        first = np.ones(n, dtype=bool)
        first[1:] = (o[1:] != o[:-1]) | (slot[1:] != slot[:-1])
        level[order[first | last]] = step
    return level


def quality_weighted_descriptors(
    vectors: np.ndarray, quality: np.ndarray, owner: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each of `n` tracklets' normalised quality-weighted mean of its unit samples, and its
    summed quality."""
    norms = np.sqrt(np.einsum("nd,nd->n", vectors, vectors)).astype(np.float32)
    scale = np.asarray(quality / np.where(norms > 0, norms, np.float32(1)), dtype=np.float32)
    weighted = vectors * scale[:, None]
    summed = np.zeros((n, vectors.shape[1]), dtype=np.float64)
    np.add.at(summed, owner, weighted)
    lengths = np.sqrt(np.einsum("nd,nd->n", summed, summed))[:, None]
    unit = (summed / np.where(lengths > 0, lengths, 1.0)).astype(np.float32)
    return unit, np.bincount(owner, weights=quality, minlength=n)
