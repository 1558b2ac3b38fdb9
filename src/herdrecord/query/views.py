"""DuckDB over the record: documented views of the Lance tables, for people's questions.

Each Lance table is registered with DuckDB as a dataset (the Arrow route), so a query's
filters and column choices are pushed down into Lance and only the rows and columns it needs
are read; the record is never copied. Vector columns (float16 embeddings, which DuckDB cannot
read) are left out of every view. Rows of batches not yet in the ledger are hidden, as
everywhere else.

Views: `animals`, `tracklets` (with the current animal), `links` (the full decision history),
`observations` (with the current animal), `days` (with `weight_est_kg` from the record's
area -> weight calibration), `events` (in force), `events_history` (every row),
`keyframes` (metadata, not the JPEG bytes), `batches` (the ledger), `pool` (exemplar
metadata). Their columns are described in `schemas/data-dictionary.md`, and they are all a
connection's catalog holds: the tables behind them, the record's keys among them, cannot be
named in a query.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import lance
import pyarrow as pa

from herdrecord.config import Settings
from herdrecord.days.derive import weight_calibration
from herdrecord.store.record import Record, create_record
from herdrecord.store.schema import table_schemas


class TabularDataset(lance.LanceDataset):
    """A Lance dataset that shows DuckDB only its non-vector columns (DuckDB 2.0 cannot
    read Arrow float16); scans still push DuckDB's filters and projections into Lance."""

    @property
    def schema(self) -> pa.Schema:
        """Return the dataset's schema without vector columns."""
        full = super().schema
        return pa.schema([f for f in full if not pa.types.is_fixed_size_list(f.type)])

    def scanner(  # type: ignore[override]
        self, columns: list[str] | None = None, **options: Any
    ) -> lance.LanceScanner:
        """Return a Lance scanner; by default over the non-vector columns only."""
        return super().scanner(columns=columns or self.schema.names, **options)


@dataclass(frozen=True)
class ViewColumn:
    """One column of a view, for the data dictionary."""

    name: str
    type: str
    doc: str


# Columns the views add to their tables' own, with what they mean.
ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "tracklets": {
        "animal_id": "current animal of the tracklet (its latest link); null when unknown",
        "link_score": "similarity of the tracklet to that animal, cosine",
        "link_method": "how the current link was decided: auto, tag, anchored, review",
        "duration_s": "end - start, seconds",
        "day": "UTC day of the start",
    },
    "observations": {
        "animal_id": "current animal of the observation's tracklet; null when unknown",
        "pen_id": "pen of the tracklet",
        "day": "UTC day of the observation",
    },
    "days": {"weight_est_kg": "weight from standing area, kg (null without a calibration)"},
    "keyframes": {"animal_id": "current animal of the keyframe's tracklet; null when unknown"},
}

_VIEW_SQL = {
    "animals": "SELECT * FROM _animals",
    "batches": "SELECT * FROM _batches",
    "links": "SELECT * FROM _links",
    "_current": (
        "SELECT device_id, track_id, animal_id, score, method FROM _links "
        "QUALIFY row_number() OVER (PARTITION BY device_id, track_id ORDER BY decided_at DESC) = 1"
    ),
    "_tracklet_pens": "SELECT device_id, track_id, pen_id FROM _tracklets",
    "tracklets": (
        "SELECT t.* EXCLUDE (batch_id), c.animal_id, c.score AS link_score, "
        'c.method AS link_method, epoch(t."end") - epoch(t.start) AS duration_s, '
        "CAST(timezone('UTC', t.start) AS DATE) AS day "
        "FROM _tracklets t LEFT JOIN _current c USING (device_id, track_id) "
        "WHERE t.batch_id IN (SELECT batch_id FROM _batches)"
    ),
    "observations": (
        "SELECT o.* EXCLUDE (batch_id), c.animal_id, k.pen_id, "
        "CAST(timezone('UTC', o.t) AS DATE) AS day "
        "FROM _observations o JOIN _tracklet_pens k USING (device_id, track_id) "
        "LEFT JOIN _current c USING (device_id, track_id) "
        "WHERE o.batch_id IN (SELECT batch_id FROM _batches)"
    ),
    "keyframes": (
        "SELECT k.* EXCLUDE (batch_id, jpeg), c.animal_id "
        "FROM _keyframes k LEFT JOIN _current c USING (device_id, track_id) "
        "WHERE k.batch_id IN (SELECT batch_id FROM _batches)"
    ),
    "events_history": "SELECT * FROM _events",
    "events": (
        "SELECT * EXCLUDE (retracted) FROM _events WHERE NOT coalesce(retracted, false) "
        "AND event_id NOT IN (SELECT supersedes FROM _events WHERE supersedes IS NOT NULL)"
    ),
    "pool": "SELECT * FROM _pool",
    # As recorded, with each animal's ear tag that linking bound since (a merged animal's
    # rows keep its id: `animals.merged_into` says where it went).
    "identifiers": (
        "SELECT * FROM _identifiers UNION ALL "
        "SELECT a.animal_id, 'org.herdrecord.tag' AS scheme, trim(a.tag_id) AS id, "
        "CAST(NULL AS DATE) AS valid_from, CAST(NULL AS DATE) AS valid_to, "
        "a.created_at AS recorded_at, 'linking' AS recorded_by FROM _animals a "
        "WHERE a.tag_id IS NOT NULL AND trim(a.tag_id) <> '' AND a.status <> 'merged' "
        "AND NOT EXISTS (SELECT 1 FROM _identifiers i WHERE i.animal_id = a.animal_id "
        "AND i.scheme = 'org.herdrecord.tag' AND i.id = trim(a.tag_id))"
    ),
    "days": (
        "SELECT *, CAST(round(exp($intercept + $slope * ln(area_px)), 1) AS FLOAT) "
        "AS weight_est_kg FROM _days"
    ),
}
VIEWS: tuple[str, ...] = tuple(name for name in _VIEW_SQL if not name.startswith("_"))


def connect(record: Record, only: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Return an in-memory DuckDB connection whose catalog holds the record's views and
    nothing else: no table of the record (`_api_keys`, `_samples`, ...) is reachable by name.

    `only` names the views a statement needs (see `views_named`): then just those are made,
    from just the tables they read (a named query over days and events opens two tables,
    not fourteen)."""
    con = duckdb.connect()
    for name, relation in view_relations(record, con, only).items():
        relation.create_view(name)
    return con


def connect_for(record: Record, sql: str) -> duckdb.DuckDBPyConnection:
    """Return a connection for one trusted statement (a named query): each view it names is
    read once into an Arrow table, holding the columns the statement names, and registered
    under the view's name.

    DuckDB plans joins over rows it holds, with their counts, far better than over scans of
    Lance datasets (the lameness query over a year of 1,000 animals: 38 s over the datasets,
    under 1 s over the rows), and a statement that reads four of the days' 25 columns does
    not copy the lists of the other 21. What is read is kept in this process
    (`MATERIALISED`) under the versions of the tables those views are made of, so the next
    question while they are unchanged (a vet's session on the service) skips the reading."""
    con = _own_connection()
    named_views = sorted(views_named(sql))
    # Stamped by the tables these views are made of: a question over days and events is not
    # read again because a batch of tracklets came in (nor pays to open fourteen tables).
    stamp = record_stamp(record, tables_read(record, _needed(named_views)))
    kept = {name: MATERIALISED.get((stamp, name, sql)) for name in named_views}
    missing = [name for name, table in kept.items() if table is None]
    for name, relation in (view_relations(record, con, missing) if missing else {}).items():
        named = [c for c in relation.columns if re.search(rf"\b{re.escape(c)}\b", sql)]
        columns = ", ".join('"' + c.replace('"', '""') + '"' for c in named)
        table = (relation.project(columns) if columns else relation).to_arrow_table()
        MATERIALISED.put((stamp, name, sql), table)
        kept[name] = table
    for name, table in kept.items():
        con.register(name, table)  # scanned in place: kept rows are never copied again
    return con


_DATABASE: duckdb.DuckDBPyConnection | None = None
_DATABASE_LOCK = threading.Lock()


def _own_connection() -> duckdb.DuckDBPyConnection:
    """Return a connection whose registered tables no other connection sees, without the
    ~15 ms of a new database: a cursor on one in-memory database of the process (for
    trusted statements only; the SQL sandbox makes a database of its own per question)."""
    global _DATABASE
    with _DATABASE_LOCK:
        if _DATABASE is None:
            _DATABASE = duckdb.connect()
        return _DATABASE.cursor()


def record_stamp(record: Record, tables: Iterable[str] | None = None) -> tuple[object, ...]:
    """Return what identifies the record's content now (of `tables`, default all): each
    table's version and fragments (a table restored from a backup and written again reuses a
    version number, not its fragments)."""
    parts: list[object] = [record.location.uri]
    for name in sorted(record.table_names() if tables is None else tables):
        dataset = record.dataset(name)
        fragments = tuple(f.fragment_id for f in dataset.get_fragments())
        parts.append((name, dataset.version, fragments))
    return tuple(parts)


CacheKey = tuple[tuple[object, ...], str, str]  # (record_stamp, view, statement): uri first


class MaterialisedViews:
    """The views' rows read by named queries, by (record stamp, view, statement); rows of a
    record's earlier stamps go when its new ones come, the least recently used past `limit`
    bytes. Shared by the service's threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tables: OrderedDict[CacheKey, pa.Table] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> pa.Table | None:
        """Return the rows kept under `key`, or None."""
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
            return table

    def put(self, key: CacheKey, table: pa.Table) -> None:
        """Keep `table` under `key` (not at all if it alone is over the limit)."""
        with self._lock:
            if table.nbytes > self.limit:
                return
            stamp = key[0]
            for old in [k for k in self._tables if k[0] != stamp and k[0][0] == stamp[0]]:
                del self._tables[old]  # the record changed since: never asked for again
            self._tables[key] = table
            self._tables.move_to_end(key)
            while sum(t.nbytes for t in self._tables.values()) > self.limit:
                self._tables.popitem(last=False)

    def clear(self) -> None:
        """Forget everything kept."""
        with self._lock:
            self._tables.clear()


# 256 MiB: a year of a 1,000-animal barn's days, four columns, is about 12 MB.
MATERIALISED = MaterialisedViews(256 * 2**20)


def views_named(sql: str) -> set[str]:
    """Return the views a statement's text names (a superset: a word in a string counts)."""
    return {name for name in VIEWS if re.search(rf"\b{name}\b", sql)}


def _needed(views: Iterable[str]) -> set[str]:
    """Return the views and steps (`_current`, ...) that `views` are made from, and them."""
    needed: set[str] = set()
    todo = [name for name in views if name in _VIEW_SQL]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += [n for n in _VIEW_SQL if re.search(rf"\b{n}\b", _VIEW_SQL[name])]
    return needed


def view_relations(
    record: Record, con: duckdb.DuckDBPyConnection, only: Iterable[str] | None = None
) -> dict[str, duckdb.DuckDBPyRelation]:
    """Return the record's views (`VIEWS`, or those of `only`) as relations on `con` that
    name no catalog entry: each carries the Lance datasets it reads, so a view made from one
    exposes only itself."""
    steps = set(_VIEW_SQL) if only is None else _needed(only)
    sources: dict[str, object] = {}
    for name in sorted(_tables_in_sql(record, steps)):
        dataset = record.dataset(name)
        sources[f"_{name}"] = TabularDataset(
            dataset.uri,
            version=dataset.version,
            storage_options=record.location.storage_options,
        )
    calibration = weight_calibration(record) if "days" in steps else None
    views: dict[str, duckdb.DuckDBPyRelation] = {}
    for name, sql in _VIEW_SQL.items():
        if name not in steps:
            continue
        if name == "days":
            # A view cannot take parameters: the fit's two numbers are written into it.
            intercept = calibration.intercept if calibration else "NULL"
            slope = calibration.slope if calibration else "NULL"
            sql = sql.replace("$intercept", f"{intercept}").replace("$slope", f"{slope}")
        relation = relation_over(con, sql, sources)
        if name.startswith("_"):  # a step of other views, never a view of its own
            sources[name] = relation
        else:
            views[name] = relation
    return views


CALIBRATION_TABLES = frozenset({"days", "events"})  # what the days view's weight fit is made of


def tables_read(record: Record, steps: Iterable[str]) -> set[str]:
    """Return the record's tables the given views and steps read (`_name` in their SQL), and
    those the days view's weight calibration is made of when it is among them."""
    found = _tables_in_sql(record, steps)
    return found | (set(CALIBRATION_TABLES) if "days" in steps else set())


def _tables_in_sql(record: Record, steps: Iterable[str]) -> set[str]:
    """Return the record's tables the SQL of the given views and steps reads (`_name`)."""
    read = " ".join(_VIEW_SQL[name] for name in steps)
    return {name for name in record.table_names() if re.search(rf"\b_{name}\b", read)}


def relation_over(
    con: duckdb.DuckDBPyConnection, sql: str, sources: Mapping[str, object]
) -> duckdb.DuckDBPyRelation:
    """Return `sql` as a relation on `con` in which each name of `sources` means that object
    (a dataset, an Arrow table, another relation), not an entry of the catalog."""
    # DuckDB resolves a name that is not in the catalog to the Python object of that name in
    # the frame that calls `sql` (its replacement scan). Evaluated in a frame whose only names
    # are `sources`, the relation, and a view made from it, holds each object as a CTE of its
    # own; nothing is registered, so no query can name the objects themselves.
    scope: dict[str, object] = {"con": con, "sql": sql, **sources}
    relation: duckdb.DuckDBPyRelation = eval("con.sql(sql)", {"__builtins__": {}}, scope)
    return relation


def data_dictionary(
    dim: int = 384, con: duckdb.DuckDBPyConnection | None = None
) -> dict[str, list[ViewColumn]]:
    """Return every view's columns (name, DuckDB type, meaning), from the table schemas:
    described on `con` (a connection of `connect` with every view) or else on a new empty
    record's, which takes a second to make."""
    if con is None:
        with tempfile.TemporaryDirectory() as tmp:
            record = create_record(str(Path(tmp) / "empty"), Settings(), embedder_dim=dim)
            con = connect(record)
            try:
                return data_dictionary(dim, con)
            finally:
                con.close()
    docs = {
        (table, field.name): (field.metadata or {}).get(b"doc", b"").decode()
        for table, schema in table_schemas(dim).items()
        for field in schema
    }
    result: dict[str, list[ViewColumn]] = {}
    for view in VIEWS:
        table = "events" if view == "events_history" else view
        added = ADDED_COLUMNS.get(view, {})
        result[view] = [
            ViewColumn(str(name), str(type_), added.get(name) or docs.get((table, name), ""))
            for name, type_, *_ in con.sql(f"DESCRIBE {view}").fetchall()
        ]
    return result


def data_dictionary_markdown(dim: int = 384, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """Return the data dictionary as Markdown, one table per view (described on `con`, as
    `data_dictionary`)."""
    lines = [
        "# Data dictionary",
        "",
        "The views `herdrecord query`, `herdrecord sql` and the Parquet export show, with every",
        "column's type and meaning. Times are UTC; `_px` columns are pixels of the camera frame.",
        "Generated from `src/herdrecord/store/schema.py` and `src/herdrecord/query/views.py` by",
        "`make schemas`; do not edit by hand.",
    ]
    for view, columns in data_dictionary(dim, con).items():
        lines += ["", f"## `{view}`", "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in columns]
    return "\n".join(lines) + "\n"
