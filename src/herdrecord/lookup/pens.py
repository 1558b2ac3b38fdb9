"""The record's pens: who is in each, which devices and cameras watch it, when it last spoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from herdrecord.store.record import Record


@dataclass(frozen=True)
class PenSummary:
    """One pen as its tracklets and animals describe it."""

    pen_id: str
    animals: int  # active animals whose pen it is now
    devices: tuple[str, ...]
    cameras: tuple[str, ...]
    tracklets: int
    last_seen: datetime | None  # the end of its latest tracklet
    last_upload: datetime | None  # when its latest batch was committed here


def pen_summaries(record: Record) -> list[PenSummary]:
    """Return every pen a tracklet or an active animal names, by pen id."""
    con = duckdb.connect()
    con.register(
        "tracklets",
        record.dataset("tracklets").to_table(
            columns=["batch_id", "device_id", "camera_id", "pen_id", "end"]
        ),
    )
    con.register(
        "batches",
        record.dataset("batches").to_table(columns=["batch_id", "committed_at"]),
    )
    con.register("animals", record.dataset("animals").to_table(columns=["pen_id", "status"]))
    rows = con.sql(
        """
        WITH seen AS (
            SELECT t.pen_id, list_sort(list_distinct(list(t.device_id))) AS devices,
                   list_sort(list_distinct(list(t.camera_id))) AS cameras,
                   count(*) AS tracklets, max(t."end") AS last_seen,
                   max(b.committed_at) AS last_upload
            FROM tracklets t LEFT JOIN batches b USING (batch_id)
            GROUP BY t.pen_id),
        herd AS (
            SELECT pen_id, count(*) AS animals FROM animals
            WHERE status = 'active' AND pen_id IS NOT NULL GROUP BY pen_id)
        SELECT coalesce(s.pen_id, h.pen_id), coalesce(h.animals, 0), s.devices, s.cameras,
               coalesce(s.tracklets, 0), s.last_seen, s.last_upload
        FROM seen s FULL JOIN herd h USING (pen_id)
        ORDER BY 1
        """
    ).fetchall()
    return [
        PenSummary(
            pen_id=pen_id,
            animals=int(animals),
            devices=tuple(devices or ()),
            cameras=tuple(cameras or ()),
            tracklets=int(tracklets),
            last_seen=last_seen,
            last_upload=last_upload,
        )
        for pen_id, animals, devices, cameras, tracklets, last_seen, last_upload in rows
    ]
