"""The tables of an export: which rows each table's monthly file holds, and how a file is
written (Parquet, zstd, row groups of a sensible size, provenance and column docs inside).

The files are plain Parquet: a reader needs pyarrow, pandas, polars or DuckDB, never
herdrecord.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from herdrecord.query.views import ADDED_COLUMNS
from herdrecord.store.record import Record
from herdrecord.store.schema import table_schemas

# DuckDB and pyarrow read row groups in parallel and skip them by their statistics: groups
# of a few hundred thousand rows serve both without files of many tiny groups. Keyframe rows
# carry JPEGs, so a group is also closed at a size in bytes.
ROW_GROUP_ROWS = 250_000
ROW_GROUP_BYTES = 64 * 1024 * 1024
COMPRESSION = "zstd"

# Columns of the export that its views do not have, with what they mean.
EXPORT_COLUMNS: dict[str, dict[str, str]] = {
    "links": {"day": "UTC day of the tracklet's start (a link is filed with its tracklet)"},
    "events_history": {
        "in_force": "true for an event in force (not corrected by a later row, not a "
        "retraction); the rows of `events`"
    },
    "keyframes": {"jpeg": "JPEG bytes of the crop"},
    "descriptors": {
        "day": "UTC day of the tracklet's start",
        "descriptor": "the tracklet's re-ID descriptor: quality-weighted mean of its unit "
        "sample embeddings, L2-normalised; float16 in the record, float32 here; the embedder "
        "is in the file metadata (herdrecord.embedder)",
    },
}

Batches = Iterator[pa.RecordBatch]


@dataclass(frozen=True)
class ExportedFile:
    """One Parquet file of an export."""

    path: str  # relative to the export directory, with / separators
    rows: int
    size_bytes: int


@dataclass(frozen=True)
class ExportedTable:
    """One table of an export: its files (one per month when partitioned)."""

    name: str
    partitioning: str | None  # "month" (hive directories month=YYYY-MM) or None
    files: tuple[ExportedFile, ...]

    @property
    def rows(self) -> int:
        """Return the rows of all its files."""
        return sum(f.rows for f in self.files)

    @property
    def size_bytes(self) -> int:
        """Return the bytes of all its files."""
        return sum(f.size_bytes for f in self.files)


@dataclass(frozen=True)
class TimeTable:
    """A table of the export, one file per month of its time column."""

    name: str
    select: str  # its rows, over the views of query.connect
    time: str  # column the window and the months apply to
    is_date: bool  # DATE (else TIMESTAMPTZ)
    order: str
    filtered: bool = True  # False: `select` already reads filtered rows (export_tracklets)
    # Reads a month's rows where the view cannot (bytes and vectors live only in Lance);
    # None: the month's rows of the view, in `order`.
    rows: Callable[[Record, duckdb.DuckDBPyConnection, TimeTable, str], Batches] | None = None
    # No rows with the columns of `rows`' files (None: the view's columns).
    empty: Callable[[Record, duckdb.DuckDBPyConnection], pa.Table] | None = None

    @property
    def view(self) -> str:
        """Return the DuckDB view of the table's exported rows."""
        return f"export_{self.name}"

    @property
    def column(self) -> str:
        """Return the time column, quoted for SQL (`at` is a keyword)."""
        return f'"{self.time}"'

    def month_window(self, month: str) -> str:
        """Return SQL of the rows of one month, YYYY-MM (a range Lance can filter with)."""
        first = date.fromisoformat(f"{month}-01")
        after = (first + timedelta(days=31)).replace(day=1)
        return _window(self.column, first, after, self.is_date)

    def month_sql(self) -> str:
        """Return SQL of the YYYY-MM of the time column, UTC."""
        utc = self.column if self.is_date else f"timezone('UTC', {self.column})"
        return f"strftime({utc}, '%Y-%m')"


_KEYFRAMES_SQL = (
    "SELECT k.* EXCLUDE (batch_id), c.animal_id FROM _export_part k "
    "JOIN export_tracklet_animals c USING (device_id, track_id) "
    "ORDER BY k.t, k.device_id, k.track_id"
)
_DESCRIPTORS_SQL = (
    "SELECT e.device_id, e.track_id, e.day, d.descriptor FROM export_descriptors e "
    "JOIN _export_part d USING (device_id, track_id) WHERE {where} "
    "ORDER BY e.start, e.device_id, e.track_id"
)


def _keyframe_rows(
    record: Record, con: duckdb.DuckDBPyConnection, table: TimeTable, month: str
) -> Batches:
    """Yield a month's keyframes with their JPEG bytes, read from Lance one day at a time."""
    for day in _days_in(con, table, month):
        rows = record.read_visible("keyframes", where=_lance_day("t", day))
        yield from _joined(con, rows, _KEYFRAMES_SQL).to_batches()


def _no_keyframes(record: Record, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return no keyframes, with the columns of a keyframes file."""
    return _joined(con, record.table("keyframes").schema.empty_table(), _KEYFRAMES_SQL)


def _descriptor_rows(
    record: Record, con: duckdb.DuckDBPyConnection, table: TimeTable, month: str
) -> Batches:
    """Yield a month's tracklet descriptors as float32, read from Lance one day at a time."""
    for day in _days_in(con, table, month):
        rows = record.read_visible(
            "tracklets", ["device_id", "track_id", "descriptor"], where=_lance_day("start", day)
        )
        that_day = _window('e."start"', day, day + timedelta(days=1))
        yield from _descriptors(record, con, rows, that_day).to_batches()


def _no_descriptors(record: Record, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return no descriptors, with the columns of a descriptors file."""
    rows = record.read_visible("tracklets", ["device_id", "track_id", "descriptor"]).slice(0, 0)
    return _descriptors(record, con, rows, "false")


def _descriptors(
    record: Record, con: duckdb.DuckDBPyConnection, rows: pa.Table, where: str
) -> pa.Table:
    """Return the exported tracklets' descriptors among `rows`, as float32."""
    vector = pa.list_(pa.float32(), record.embedder.dim)
    # DuckDB cannot read float16; float32 holds every float16 value exactly.
    rows = rows.set_column(2, "descriptor", pc.cast(rows.column("descriptor"), vector))
    result = _joined(con, rows, _DESCRIPTORS_SQL.format(where=where))
    return result.set_column(3, "descriptor", pc.cast(result.column(3), vector))


def _joined(con: duckdb.DuckDBPyConnection, rows: pa.Table, sql: str) -> pa.Table:
    """Return the result of `sql` over `rows` registered as `_export_part`."""
    con.register("_export_part", rows)
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.unregister("_export_part")


def _days_in(con: duckdb.DuckDBPyConnection, table: TimeTable, month: str) -> list[date]:
    day = f"CAST(timezone('UTC', {table.column}) AS DATE)"
    sql = f"SELECT DISTINCT {day} AS d FROM {table.view} WHERE {table.month_window(month)}"
    return [d for (d,) in con.sql(sql + " ORDER BY d").fetchall()]


def _lance_day(column: str, day: date) -> str:
    """Return a Lance filter of one UTC day of a timestamp column."""
    return (
        f"{column} >= TIMESTAMP '{day} 00:00:00' AND "
        f"{column} < TIMESTAMP '{day + timedelta(days=1)} 00:00:00'"
    )


def _window(column: str, first: date | None, after: date | None, is_date: bool = False) -> str:
    """Return SQL of first <= column < after, UTC; an end left out is open."""
    literal = "DATE '{}'" if is_date else "TIMESTAMPTZ '{} 00:00:00+00'"
    parts = [f"{column} >= {literal.format(first)}"] if first else []
    parts += [f"{column} < {literal.format(after)}"] if after else []
    return " AND ".join(parts) or "true"


TIME_TABLES: tuple[TimeTable, ...] = (
    TimeTable("tracklets", "SELECT * FROM tracklets", "start", False, "start, device_id, track_id"),
    TimeTable(
        "links",
        "SELECT l.*, t.day FROM links l JOIN export_tracklets t USING (device_id, track_id)",
        "day",
        True,
        "day, device_id, track_id, decided_at",
        filtered=False,
    ),
    TimeTable(
        "descriptors",
        "SELECT device_id, track_id, day, start FROM export_tracklets",
        "start",
        False,
        "start, device_id, track_id",
        filtered=False,
        rows=_descriptor_rows,
        empty=_no_descriptors,
    ),
    TimeTable("observations", "SELECT * FROM observations", "t", False, "t, device_id, track_id"),
    TimeTable(
        "keyframes",
        "SELECT * FROM keyframes",
        "t",
        False,
        "t, device_id, track_id",
        rows=_keyframe_rows,
        empty=_no_keyframes,
    ),
    TimeTable("days", "SELECT * FROM days", "day", True, "day, animal_id"),
    TimeTable("events", "SELECT * FROM events", "at", False, '"at", recorded_at, event_id'),
    TimeTable(
        "events_history",
        "SELECT *, event_id IN (SELECT event_id FROM events) AS in_force FROM events_history",
        "at",
        False,
        '"at", recorded_at, event_id',
    ),
)


def create_export_views(
    con: duckdb.DuckDBPyConnection,
    first_day: date | None,
    last_day: date | None,
    animals: tuple[str, ...] | None,
) -> None:
    """Create the `export_<table>` views of the rows to export on a query.connect connection."""
    chosen = "true"
    if animals is not None:
        con.register("_export_selection", pa.table({"animal_id": pa.array(animals, pa.string())}))
        chosen = "animal_id IN (SELECT animal_id FROM _export_selection)"
    after = last_day + timedelta(days=1) if last_day else None
    con.execute(
        "CREATE VIEW export_tracklet_animals AS SELECT device_id, track_id, animal_id "
        f"FROM tracklets WHERE {chosen}"
    )
    for table in TIME_TABLES:
        where = f"{_window(table.column, first_day, after, table.is_date)} AND {chosen}"
        sql = f"SELECT * FROM ({table.select}) WHERE {where}" if table.filtered else table.select
        con.execute(f"CREATE VIEW {table.view} AS {sql}")


def months_of(con: duckdb.DuckDBPyConnection, table: TimeTable) -> list[str]:
    """Return the months (YYYY-MM) the table's exported rows fall in."""
    sql = f"SELECT DISTINCT {table.month_sql()} AS m FROM {table.view} ORDER BY m"
    return [str(m) for (m,) in con.sql(sql).fetchall()]


def month_rows(
    record: Record, con: duckdb.DuckDBPyConnection, table: TimeTable, month: str
) -> Batches:
    """Yield the table's exported rows of one month, in order."""
    if table.rows is not None:
        yield from table.rows(record, con, table, month)
        return
    sql = f"SELECT * FROM {table.view} WHERE {table.month_window(month)} ORDER BY {table.order}"
    yield from con.sql(sql).to_arrow_reader(64 * 1024)


def empty_rows(record: Record, con: duckdb.DuckDBPyConnection, table: TimeTable) -> pa.Table:
    """Return none of the table's rows, with the columns its files have."""
    if table.empty is not None:
        return table.empty(record, con)
    return con.sql(f"SELECT * FROM {table.view} LIMIT 0").to_arrow_table()


def write_empty(
    root: Path,
    relative: str,
    schema: pa.Schema,
    metadata: Mapping[str, str],
    docs: Mapping[str, str],
) -> ExportedFile:
    """Write a Parquet file of no rows with `schema` (its columns, metadata and docs), so
    that a reader of the table's directory finds the table, empty."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    annotated = annotated_schema(schema, metadata, docs)
    pq.write_table(annotated.empty_table(), path, compression=COMPRESSION)
    return ExportedFile(relative, 0, path.stat().st_size)


def write_part(
    root: Path,
    relative: str,
    batches: Iterable[pa.RecordBatch],
    metadata: Mapping[str, str],
    docs: Mapping[str, str],
) -> ExportedFile | None:
    """Write `batches` to the Parquet file `root/relative`; return it, or None without rows.

    The file carries `metadata` as key-value metadata and each column's meaning (from `docs`)
    as field metadata `doc`.
    """
    path = root / relative
    writer: pq.ParquetWriter | None = None
    schema = pa.schema([])
    buffered: list[pa.RecordBatch] = []
    rows = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if writer is None:
                schema = annotated_schema(batch.schema, metadata, docs)
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, schema, compression=COMPRESSION)
            buffered.append(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            rows += batch.num_rows
            if (
                sum(b.num_rows for b in buffered) >= ROW_GROUP_ROWS
                or sum(b.nbytes for b in buffered) >= ROW_GROUP_BYTES
            ):
                _flush(writer, buffered)
        if writer is not None:
            _flush(writer, buffered)
    finally:
        if writer is not None:
            writer.close()
    return ExportedFile(relative, rows, path.stat().st_size) if writer is not None else None


def _flush(writer: pq.ParquetWriter, buffered: list[pa.RecordBatch]) -> None:
    """Write the buffered batches as one row group and empty the buffer."""
    if buffered:
        table = pa.Table.from_batches(buffered)
        writer.write_table(table, row_group_size=table.num_rows)
        buffered.clear()


def annotated_schema(
    schema: pa.Schema, metadata: Mapping[str, str], docs: Mapping[str, str]
) -> pa.Schema:
    """Return `schema` with file metadata and a `doc` on every documented column."""
    fields = [
        field.with_metadata({"doc": docs[field.name]}) if docs.get(field.name) else field
        for field in schema
    ]
    return pa.schema(fields, metadata=dict(metadata))


def column_docs(dim: int) -> dict[str, dict[str, str]]:
    """Return the meaning of every column of every exported table."""
    schemas = table_schemas(dim)
    own = {
        name: {f.name: (f.metadata or {}).get(b"doc", b"").decode() for f in schema}
        for name, schema in schemas.items()
    }
    docs = {name: {**own[name], **ADDED_COLUMNS.get(name, {})} for name in schemas}
    docs["events_history"] = dict(own["events"])
    docs["descriptors"] = {**docs["tracklets"]}
    for table, columns in EXPORT_COLUMNS.items():
        docs[table] = {**docs[table], **columns}
    return docs


__all__ = [
    "EXPORT_COLUMNS",
    "TIME_TABLES",
    "ExportedFile",
    "ExportedTable",
    "TimeTable",
    "annotated_schema",
    "column_docs",
    "create_export_views",
    "empty_rows",
    "month_rows",
    "months_of",
    "write_empty",
    "write_part",
]
