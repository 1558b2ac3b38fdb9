"""Reading the links table: each tracklet's current link, and the pen-days of tracklets."""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa

from herdrecord.store import Record


def pen_days_of(record: Record, keys: pa.Table, *, listed: bool = True) -> set[tuple[str, date]]:
    """Return the (pen, UTC day) of the tracklets whose (device_id, track_id) are in `keys`,
    or, with `listed=False`, of the committed tracklets that are not."""
    tracklets = record.read_visible("tracklets", ["device_id", "track_id", "pen_id", "start"])
    con = duckdb.connect()
    con.register("t", tracklets)
    con.register("k", keys.select(["device_id", "track_id"]))
    join = "SEMI JOIN" if listed else "ANTI JOIN"
    rows = con.sql(
        f"SELECT DISTINCT t.pen_id, CAST(timezone('UTC', t.start) AS DATE) AS day FROM t "
        f"{join} k ON t.device_id = k.device_id AND t.track_id = k.track_id"
    ).fetchall()
    return {(str(pen), day) for pen, day in rows}


def current_links(record: Record) -> pa.Table:
    """Return each tracklet's current link (its latest decision)."""
    links = record.table("links").to_lance().to_table()
    con = duckdb.connect()
    con.register("links", links)
    return con.sql(
        "SELECT * FROM links QUALIFY row_number() OVER "
        "(PARTITION BY device_id, track_id ORDER BY decided_at DESC) = 1"
    ).to_arrow_table()
