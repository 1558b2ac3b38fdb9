"""Reading the links table: each tracklet's current link, and the pen-days of tracklets."""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.store.record import Record


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
    links = record.dataset("links").to_table()
    con = duckdb.connect()
    con.register("links", links)
    return con.sql(
        "SELECT * FROM links QUALIFY row_number() OVER "
        "(PARTITION BY device_id, track_id ORDER BY decided_at DESC) = 1"
    ).to_arrow_table()


META_RELINK_OWED = "relink_owed"  # pen-days a late event changed, re-solved by the next link


def owe_relink(record: Record, animal_id: str, since: date) -> set[tuple[str, date]]:
    """Note as owed every pen-day from `since` on of the pens the animal was linked in from
    that day, or was last in; return those pen-days (the caller holds the writer lock).

    A departure recorded late (or withdrawn) changes who could be seen on those days: the next
    link run re-solves them, so a departed animal's id goes to no newcomer.
    """
    tracklets = record.read_visible("tracklets", ["device_id", "track_id", "pen_id", "start"])
    links = current_links(record)
    con = duckdb.connect()
    con.register("t", tracklets)
    con.register("l", links.select(["device_id", "track_id", "animal_id"]))
    animal = record.dataset("animals").to_table(
        columns=["pen_id"], filter=pc.field("animal_id") == animal_id
    )
    pens = {
        str(p)
        for (p,) in con.execute(
            "SELECT DISTINCT t.pen_id FROM t JOIN l USING (device_id, track_id) "
            "WHERE l.animal_id = ? AND CAST(timezone('UTC', t.start) AS DATE) >= ?",
            [animal_id, since],
        ).fetchall()
    }
    pens |= {str(p) for p in animal.column("pen_id").to_pylist() if p is not None}
    if not pens:
        return set()
    owed = {
        (str(pen), day)
        for pen, day in con.execute(
            "SELECT DISTINCT pen_id, CAST(timezone('UTC', start) AS DATE) AS day FROM t "
            "WHERE list_contains(?, pen_id) AND CAST(timezone('UTC', start) AS DATE) >= ?",
            [sorted(pens), since],
        ).fetchall()
    }
    if owed:
        record.set_metadata(
            META_RELINK_OWED, sorted([p, d.isoformat()] for p, d in owed | relinks_owed(record))
        )
    return owed


def relinks_owed(record: Record) -> set[tuple[str, date]]:
    """Return the pen-days a late event left to re-solve."""
    return {
        (str(pen), date.fromisoformat(str(day)))
        for pen, day in record.metadata.get(META_RELINK_OWED) or []
    }


def connect_links(record: Record) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection with the current links and the visible tracklets."""
    con = duckdb.connect()
    con.register("current", current_links(record))
    con.register(
        "tracklets",
        record.read_visible("tracklets", ["device_id", "track_id", "pen_id", "start", "end"]),
    )
    return con
