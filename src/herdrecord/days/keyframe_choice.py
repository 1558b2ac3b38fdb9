"""The day's keyframes: a few good pictures of each animal-day, spread over the day and over
what it was doing, not simply the first N."""

from __future__ import annotations

import math
from collections import defaultdict

import duckdb
import numpy as np
import pyarrow as pa

from herdrecord.store.record import Record
from herdrecord.store.schema import days_schema

TIME_SCALE_S = 3600.0  # two pictures an hour apart are about half as redundant
REDUNDANCY_WEIGHT = 0.7  # how much a redundant picture loses against a sharp one


def choose_keyframes(
    record: Record, con: duckdb.DuckDBPyConnection, span: str, per_day: int
) -> pa.Table:
    """Return (animal_id, day, keyframes) for the animal-days in `con`'s temp table `o`.

    Each keyframe is scored by the edge quality of the sample nearest before it; picks are
    greedy, each time taking the best quality less its redundancy with those already taken
    (closeness in time, the same behaviour, the same tracklet)."""
    con.register(
        "kf",
        record.read_visible("keyframes", ["device_id", "track_id", "t"], where=span),
    )
    con.register(
        "smp", record.read_visible("samples", ["device_id", "track_id", "t", "quality"], where=span)
    )
    candidates = con.sql(
        """
        WITH mine AS (SELECT DISTINCT device_id, track_id, animal_id FROM o),
        k AS (SELECT kf.*, mine.animal_id FROM kf JOIN mine USING (device_id, track_id))
        SELECT k.animal_id, CAST(timezone('UTC', k.t) AS DATE) AS day, k.device_id, k.track_id,
               k.t, epoch(k.t) AS ts, coalesce(s.quality, 0.5) AS quality,
               coalesce(b.behaviour, '') AS behaviour
        FROM k
        ASOF LEFT JOIN smp s ON k.device_id = s.device_id AND k.track_id = s.track_id
                            AND k.t >= s.t
        ASOF LEFT JOIN (SELECT device_id, track_id, t, behaviour FROM o) b
                  ON k.device_id = b.device_id AND k.track_id = b.track_id AND k.t >= b.t
        ORDER BY k.animal_id, day, k.t
        """
    ).to_arrow_table()
    groups: dict[tuple[str, object], list[int]] = defaultdict(list)
    for i, key in enumerate(
        zip(
            candidates.column("animal_id").to_pylist(),
            candidates.column("day").to_pylist(),
            strict=True,
        )
    ):
        groups[key].append(i)
    ts = candidates.column("ts").to_numpy()
    quality = candidates.column("quality").to_numpy()
    behaviour = np.asarray(candidates.column("behaviour").to_pylist(), dtype=object)
    device = candidates.column("device_id").to_pylist()
    track_ids = candidates.column("track_id").to_pylist()
    tracklet = np.asarray(
        [f"{d}:{t}" for d, t in zip(device, track_ids, strict=True)], dtype=object
    )
    times = candidates.column("t").to_pylist()
    animal_ids, day_values, refs = [], [], []
    for (animal_id, day), rows in groups.items():
        picked = _pick(np.asarray(rows), ts, quality, behaviour, tracklet, per_day)
        animal_ids.append(animal_id)
        day_values.append(day)
        refs.append(
            [
                {"device_id": device[r], "track_id": track_ids[r], "t": times[r]}
                for r in sorted(picked)
            ]
        )
    return pa.table(
        {
            "animal_id": pa.array(animal_ids, pa.string()),
            "day": pa.array(day_values, pa.date32()),
            "keyframes": pa.array(refs, days_schema().field("keyframes").type),
        }
    )


def _pick(
    rows: np.ndarray,
    ts: np.ndarray,
    quality: np.ndarray,
    behaviour: np.ndarray,
    tracklet: np.ndarray,
    k: int,
) -> list[int]:
    """Return up to `k` of `rows`, greedily by quality less redundancy with earlier picks."""
    picked: list[int] = []
    redundancy = np.zeros(len(rows))
    available = np.ones(len(rows), dtype=bool)
    for _ in range(min(k, len(rows))):
        score = np.where(available, quality[rows] - REDUNDANCY_WEIGHT * redundancy, -math.inf)
        best = int(np.argmax(score))
        picked.append(int(rows[best]))
        available[best] = False
        closeness = (
            0.5 * np.exp(-np.abs(ts[rows] - ts[rows[best]]) / TIME_SCALE_S)
            + 0.3 * (behaviour[rows] == behaviour[rows[best]])
            + 0.2 * (tracklet[rows] == tracklet[rows[best]])
        )
        redundancy = np.maximum(redundancy, closeness)
    return picked
