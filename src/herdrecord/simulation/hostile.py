"""Hostile uploads: small bodies that expand to huge ones, for the tests and
`benchmarks/hostile.py` that check each is refused at a bounded cost.

Every builder takes one valid JSON-form batch with at least one tracklet (its ids, times and
first sample are reused) and a folder for the Parquet files it writes, and returns the body
and its content type.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from herdrecord.contract.parquet import BULK_SCHEMA, bulk_table_from_json

Body = tuple[bytes, str]
PARQUET = "application/vnd.apache.parquet"


def empty_tracklets(batch: dict[str, Any], folder: Path) -> Body:
    """3 MB of JSON (4 KB gzipped): a million empty tracklets."""
    bomb = {**batch, "batch_id": "hostile/empty-tracklets", "tracklets": [{}] * 1_000_000}
    return gzip.compress(json.dumps(bomb).encode(), 9), "application/gzip"


def bad_samples(batch: dict[str, Any], folder: Path) -> Body:
    """5 MB of JSON: 2,000 tracklets of 256 samples that are not objects (512,000 errors)."""
    tracklet = {**batch["tracklets"][0], "observations": [], "keyframes": []}
    tracklets = [{**tracklet, "track_id": f"t{i}", "samples": [0] * 256} for i in range(2000)]
    bomb = {**batch, "batch_id": "hostile/bad-samples", "tracklets": tracklets}
    return json.dumps(bomb).encode(), "application/json"


def long_distinct_ids(batch: dict[str, Any], folder: Path) -> Body:
    """1 MB of Parquet: 10,000 track ids of 100 KB each, all different (1 GB decoded)."""
    counter = iter(range(10**9))

    def long_ids(n: int) -> pa.Array:
        return pa.array([f"t{next(counter)}-" + "x" * 100_000 for _ in range(n)])

    return _bulk_rows(batch, folder / "long-ids.parquet", 10_000, track_id=long_ids), PARQUET


def repeated_long_label(batch: dict[str, Any], folder: Path) -> Body:
    """15 KB of Parquet: 100 rows of 400 observations whose behaviour is the same 100 KB
    string (4 GB once decoded; the file's dictionary holds it once)."""
    rows, per_row = 100, 400
    n = rows * per_row
    behaviour = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int32)), pa.array(["x" * 100_000])
    )
    times = pa.array(np.full(n, 1_795_000_000_000_000, np.int64)).cast(pa.timestamp("us", tz="UTC"))
    observations = pa.ListArray.from_arrays(
        pa.array(np.arange(0, n + 1, per_row, dtype=np.int32)),
        pa.StructArray.from_arrays([times, behaviour], names=["t", "behaviour"]),
    )
    table = _template(batch).take(np.zeros(rows, np.int64))
    index = table.schema.get_field_index("observations")
    table = table.set_column(index, pa.field("observations", observations.type), observations)
    path = folder / "repeated-label.parquet"
    pq.write_table(table, path, compression="zstd")
    return path.read_bytes(), PARQUET


def many_rows(batch: dict[str, Any], folder: Path) -> Body:
    """1 MB of Parquet: 5,000,000 tracklet rows."""
    return _bulk_rows(batch, folder / "many-rows.parquet", 5_000_000), PARQUET


BOMBS: dict[str, Callable[[dict[str, Any], Path], Body]] = {
    "json-million-empty-tracklets": empty_tracklets,
    "json-half-million-bad-samples": bad_samples,
    "parquet-long-distinct-ids": long_distinct_ids,
    "parquet-one-long-label-repeated": repeated_long_label,
    "parquet-five-million-rows": many_rows,
}
"""Each hostile upload by name: what `benchmarks/hostile.py` replays and the tests check."""


def pen_day_flood(tracklets: int, seed: int = 0, dim: int = 384) -> list[dict[str, Any]]:
    """Return one pen-day of `tracklets` one-sample tracklets of nobody in particular, as 24
    hourly JSON-form batches: random starts, lengths of 5-90 s, places and unit looks. Every
    end has dozens of plausible successors, the worst case for stitching's joins and swaps."""
    rng = np.random.default_rng(seed)
    per_hour = max(1, tracklets // 24)
    batches = []
    for hour in range(24):
        rows = []
        for k in range(per_hour):
            start = hour * 3600 + float(rng.uniform(0, 3500))
            end = start + float(rng.uniform(5, 90))
            look = rng.normal(size=dim)
            look /= np.linalg.norm(look)
            x, y = (float(v) for v in rng.uniform(0, 1800, 2))
            rows.append(
                {
                    "track_id": f"cam1-{hour * per_hour + k:06d}",
                    "camera_id": "cam1",
                    "pen_id": "pen-1",
                    "start": _at(start),
                    "end": _at(end),
                    "tag_id": None,
                    "samples": [
                        {"t": _at(start), "embedding": np.round(look, 5).tolist(), "quality": 0.9}
                    ],
                    "observations": [
                        {
                            "t": _at(t),
                            "bbox": [x, y, 180.0, 96.0],
                            "area_px": 14230.0,
                            "behaviour": "lying_sternal",
                            "behaviour_conf": 0.9,
                            "speed_px_s": 0.0,
                            "gait_score": None,
                        }
                        for t in (start, end)
                    ],
                    "keyframes": [],
                }
            )
        batches.append(
            {
                "schema": "herdrecord.edge-batch/1",
                "batch_id": f"dev-01/2026-11-21T{hour:02d}",
                "farm_id": "farm-a",
                "device_id": "dev-01",
                "embedder": {"name": "dinov3-vits16", "dim": dim},
                "tracklets": rows,
            }
        )
    return batches


def simultaneous_copies(batch: dict[str, Any], n: int) -> dict[str, Any]:
    """Return `batch` with its first tracklet copied `n` times (one sample, no keyframes),
    every copy at the same moment in the same pen: n animals at once, as far as the record
    can tell (a broken tracker, or a crafted upload)."""
    tracklet = batch["tracklets"][0]
    sample = tracklet["samples"][0]
    copies = [
        {**tracklet, "track_id": f"flood-{i}", "samples": [sample], "keyframes": []}
        for i in range(n)
    ]
    return {**batch, "tracklets": copies}


def _at(seconds: float) -> str:
    """Return 2026-11-21 plus `seconds` as an ISO 8601 UTC time."""
    return (FLOOD_DAY + timedelta(seconds=seconds)).isoformat()


FLOOD_DAY = datetime(2026, 11, 21, tzinfo=UTC)


def _template(batch: dict[str, Any]) -> pa.Table:
    """Return the batch's first tracklet as one bulk row, with one one-float sample and no
    observations or keyframes: the smallest row the bulk form reads."""
    small = copy.deepcopy({**batch, "batch_id": "hostile/bulk"})
    tracklet = small["tracklets"][0]
    small["tracklets"] = [
        {
            **tracklet,
            "samples": [{**tracklet["samples"][0], "embedding": [0.0]}],
            "observations": [],
            "keyframes": [],
        }
    ]
    return bulk_table_from_json([small])


def _bulk_rows(
    batch: dict[str, Any], path: Path, rows: int, **columns: Callable[[int], pa.Array]
) -> bytes:
    """Write `rows` copies of the template row, in row groups of 100 rows when a column is
    replaced (by `columns[name](rows_in_group)`), and return the file's bytes."""
    group = 100 if columns else min(rows, 500_000)
    base = _template(batch).take(np.zeros(group, np.int64))
    with pq.ParquetWriter(path, BULK_SCHEMA, compression="zstd") as writer:
        for start in range(0, rows, group):
            table = base
            for name, make in columns.items():
                field = BULK_SCHEMA.field(name)
                table = table.set_column(BULK_SCHEMA.get_field_index(name), field, make(group))
            writer.write_table(table.slice(0, min(group, rows - start)))
    return path.read_bytes()
