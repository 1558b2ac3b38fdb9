"""Parquet export for outcome studies: the record's views as hive-partitioned Parquet with
their provenance in every file, the data dictionary and a manifest beside them.

An export directory:

    animals/animals.parquet                                 all, or those the export mentions
    identifiers/identifiers.parquet                         those animals' identifiers
    tracklets/month=2026-09/tracklets-2026-09.parquet       one file per table and month
    links/ days/ events/ events_history/                    likewise
    observations/ keyframes/ descriptors/                   when asked for
    data-dictionary.md                                      every column's type and meaning
    manifest.json                                           tables, files, rows, filters, provenance

A time-based table is split by the month of its own time column (tracklets `start`,
observations and keyframes `t`, days `day`, events `at`; links and descriptors go with their
tracklet's day); pyarrow, pandas, polars and DuckDB read a table's directory with `month` as
a column. Each table is filtered on its own time column, so an observation just inside the
window may belong to a tracklet that started just before it. Chosen animals include the ids
merged into them; with any filter, `animals` holds the chosen animals and every animal an
exported row mentions. A table without rows is one Parquet file of no rows,
`TABLE/TABLE.parquet` with the table's columns: every reader finds every table the export
holds.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from herdrecord._version import __version__
from herdrecord.errors import HerdrecordError, InvalidInput, UnknownAnimal
from herdrecord.events.window import check_days
from herdrecord.query.export_tables import (
    EXPORT_COLUMNS,
    TIME_TABLES,
    ExportedFile,
    ExportedTable,
    TimeTable,
    column_docs,
    create_export_views,
    empty_rows,
    month_rows,
    months_of,
    write_empty,
    write_part,
)
from herdrecord.query.views import connect, data_dictionary_markdown
from herdrecord.store.record import Record

MANIFEST_FORMAT = "herdrecord-export/1"


@dataclass(frozen=True)
class ExportFilters:
    """Which rows an export holds: a window of UTC days, and listed animals or a cohort's."""

    first_day: date | None = None  # inclusive, UTC
    last_day: date | None = None  # inclusive, UTC
    animal_ids: tuple[str, ...] | None = None
    cohort: str | None = None  # a named query of herdrecord.query.cohorts
    cohort_params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_days(self.first_day, self.last_day)
        if self.first_day and self.last_day and self.first_day > self.last_day:
            raise InvalidInput(
                f"from {self.first_day} is after to {self.last_day}: the window is empty"
            )
        if self.animal_ids is not None and self.cohort is not None:
            raise InvalidInput("choose animals by a list or by a cohort, not both")
        if self.animal_ids is not None and not self.animal_ids:
            raise InvalidInput("the list of animals is empty; give at least one animal id")
        if self.cohort_params and self.cohort is None:
            raise InvalidInput("cohort parameters were given without a cohort")

    def to_json(self) -> dict[str, object]:
        """Return the filters as JSON-able values (null: not filtered)."""
        return {
            "from": self.first_day.isoformat() if self.first_day else None,
            "to": self.last_day.isoformat() if self.last_day else None,
            "animals": list(self.animal_ids) if self.animal_ids is not None else None,
            "cohort": (
                {"name": self.cohort, "params": dict(self.cohort_params)} if self.cohort else None
            ),
        }


@dataclass(frozen=True)
class ExportOptions:
    """Which optional tables an export adds."""

    observations: bool = False
    keyframes: bool = False  # with the JPEG bytes
    embeddings: bool = False  # tracklet descriptors as float32, with the embedder


@dataclass(frozen=True)
class ExportProgress:
    """How far the export of one table is: files written of its months."""

    table: str
    done: int
    total: int
    rows: int


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    out_dir: Path
    tables: dict[str, ExportedTable]
    seconds: float

    @property
    def files(self) -> int:
        """Return the number of Parquet files."""
        return sum(len(t.files) for t in self.tables.values())

    @property
    def size_bytes(self) -> int:
        """Return the bytes of the Parquet files."""
        return sum(t.size_bytes for t in self.tables.values())


def export_parquet(
    record: Record,
    out_dir: Path,
    filters: ExportFilters | None = None,
    options: ExportOptions | None = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportResult:
    """Export the record's tables, filtered, as Parquet under the new or empty `out_dir`."""
    started = time.monotonic()
    filters = filters or ExportFilters()
    options = options or ExportOptions()
    out_dir = new_directory(out_dir)
    selected = selected_animals(record, filters)
    info = provenance(record, filters.to_json(), datetime.now(UTC))
    filtered = filters != ExportFilters()
    dim = record.embedder.dim
    docs = column_docs(dim)
    with staged(out_dir) as staging:
        con = connect(record)
        try:
            dictionary = data_dictionary_markdown(dim, con)  # before the export's own views
            con.execute("SET TimeZone = 'UTC'")
            create_export_views(con, filters.first_day, filters.last_day, selected)
            tables = _write_time_tables(record, con, staging, info, docs, options, on_progress)
            kept = _mentioned_animals(con, tables, selected) if filtered else None
            animals = _write_animals(con, staging, info, docs, kept, on_progress)
            tables = {**animals, **tables}
        finally:
            con.close()
        write_dictionary(staging, dim, dictionary)
        write_manifest(staging, info, tables.values())
    return ExportResult(out_dir, tables, time.monotonic() - started)


READ_ONCE_ROWS = 2_000_000  # a table this small is read once for all its months


def _read_once_if_small(
    con: duckdb.DuckDBPyConnection, table: TimeTable
) -> dict[str, pa.Table] | None:
    """Return the table's exported rows by month when it has at most `READ_ONCE_ROWS`: one
    sorted read of the Lance dataset cut into months in memory (a year of 1,000 animals'
    days: twelve scans became one, and no copy into DuckDB first). Bigger tables
    (observations, keyframes) stream month by month, in bounded memory: None."""
    if table.rows is not None:
        return None
    (count,) = con.sql(f"SELECT count(*) FROM {table.view}").fetchall()[0]
    if count > READ_ONCE_ROWS:
        return None
    # Every table's order starts with its time column, so its rows come in month order.
    rows = con.sql(f"SELECT * FROM {table.view} ORDER BY {table.order}").to_arrow_table()
    times = rows.column(table.column.strip('"')).combine_chunks()
    if pa.types.is_timestamp(times.type):  # to UTC wall time, then months
        times = times.cast(pa.timestamp("us"))
    month = np.asarray(times.to_numpy(zero_copy_only=False)).astype("datetime64[M]")
    cuts = np.flatnonzero(month[1:] != month[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(month)]
    return {
        str(month[lo]): rows.slice(lo, hi - lo) for lo, hi in itertools.pairwise(bounds) if hi > lo
    }


def new_directory(out_dir: Path) -> Path:
    """Return the resolved `out_dir`, refusing one that exists and is not empty."""
    out_dir = out_dir.expanduser().resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInput(f"{out_dir} exists and is not empty; choose a new directory")
    return out_dir


@contextlib.contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """Yield a hidden sibling of `out_dir` to write into, moved into place when the block
    ends: a failed export leaves nothing that looks like a finished one."""
    staging = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        out_dir.rmdir()
    staging.rename(out_dir)


def selected_animals(record: Record, filters: ExportFilters) -> tuple[str, ...] | None:
    """Return the animals the filters choose (None: all), with those merged into them."""
    if filters.cohort is not None:
        chosen = _cohort_animals(record, filters.cohort, filters.cohort_params)
    elif filters.animal_ids is not None:
        chosen = list(dict.fromkeys(filters.animal_ids))
    else:
        return None
    animals = record.dataset("animals").to_table(columns=["animal_id", "merged_into"])
    merged_into = dict(
        zip(animals["animal_id"].to_pylist(), animals["merged_into"].to_pylist(), strict=True)
    )
    unknown = [a for a in chosen if a not in merged_into]
    if len(unknown) == 1:
        raise UnknownAnimal(unknown[0])
    if unknown:
        raise InvalidInput(
            f"no animals {', '.join(unknown)} in the record — `herdrecord animals` lists them"
        )
    # An animal's past includes the ids merged into it (events stay under the old id).
    result = set(chosen)
    while grown := {a for a, into in merged_into.items() if into in result} - result:
        result |= grown
    return tuple(sorted(result))


def _cohort_animals(record: Record, name: str, params: Mapping[str, str]) -> list[str]:
    """Return the animals of the named cohort query (herdrecord.query.cohorts)."""
    try:
        cohorts: Any = importlib.import_module("herdrecord.query.cohorts")
    except ModuleNotFoundError as exc:
        if exc.name != "herdrecord.query.cohorts":
            raise
        raise InvalidInput(
            "named cohorts are not available in this herdrecord (no herdrecord.query.cohorts); "
            "list the animals with --animals instead"
        ) from None
    table: pa.Table = cohorts.run_query(record, name, dict(params))
    if "animal_id" not in table.column_names:
        raise HerdrecordError(f"cohort {name!r} returned no animal_id column; cannot export it")
    return sorted({str(a) for a in table.column("animal_id").to_pylist() if a is not None})


def _write_time_tables(
    record: Record,
    con: duckdb.DuckDBPyConnection,
    root: Path,
    info: Mapping[str, object],
    docs: Mapping[str, Mapping[str, str]],
    options: ExportOptions,
    on_progress: Callable[[ExportProgress], None] | None,
) -> dict[str, ExportedTable]:
    """Write the time-based tables, one file per month of each."""
    optional = {
        "observations": options.observations,
        "keyframes": options.keyframes,
        "descriptors": options.embeddings,
    }
    tables: dict[str, ExportedTable] = {}
    with ThreadPoolExecutor(os.cpu_count() or 1) as writers:
        for table in TIME_TABLES:
            if not optional.get(table.name, True):
                continue
            tables[table.name] = _write_time_table(
                record, con, root, info, docs, table, writers, on_progress
            )
    return tables


def _write_time_table(
    record: Record,
    con: duckdb.DuckDBPyConnection,
    root: Path,
    info: Mapping[str, object],
    docs: Mapping[str, Mapping[str, str]],
    table: TimeTable,
    writers: ThreadPoolExecutor,
    on_progress: Callable[[ExportProgress], None] | None,
) -> ExportedTable:
    """Write one time-based table, one file per month."""
    by_month = _read_once_if_small(con, table)
    months = months_of(con, table) if by_month is None else list(by_month)
    files: list[ExportedFile] = []
    _report(on_progress, table.name, files, len(months))

    def write(month: str) -> ExportedFile | None:
        rows = (
            month_rows(record, con, table, month)
            if by_month is None
            else iter(by_month[month].to_batches())
        )
        return write_part(
            root,
            f"{table.name}/month={month}/{table.name}-{month}.parquet",
            rows,
            file_metadata(info, table.name),
            docs[table.name],
        )

    # Streamed from the record, one month after another; held in memory, the months' files
    # are encoded at once (pyarrow releases the GIL while it compresses).
    written = map(write, months) if by_month is None else writers.map(write, months)
    for part in written:
        files += [part] if part else []
        _report(on_progress, table.name, files, len(months))
    if not files:  # a reader of the table's directory finds it, empty
        files.append(
            write_empty(
                root,
                f"{table.name}/{table.name}.parquet",
                empty_rows(record, con, table).schema,
                file_metadata(info, table.name),
                docs[table.name],
            )
        )
    return ExportedTable(table.name, "month", tuple(files))


def _write_animals(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    info: Mapping[str, object],
    docs: Mapping[str, Mapping[str, str]],
    animal_ids: list[str] | None,
    on_progress: Callable[[ExportProgress], None] | None,
) -> dict[str, ExportedTable]:
    """Write the animals with the given ids (None: all), and their identifiers (scheme and
    id, with the days each holds), one file each."""
    where = ""
    if animal_ids is not None:
        con.register("_export_animals", pa.table({"animal_id": pa.array(animal_ids, pa.string())}))
        where = "WHERE animal_id IN (SELECT animal_id FROM _export_animals)"
    out = {}
    for name, order in (("animals", "animal_id"), ("identifiers", "animal_id, scheme, id")):
        _report(on_progress, name, [], 1)
        rows = con.sql(f"SELECT * FROM {name} {where} ORDER BY {order}").to_arrow_reader()
        path = f"{name}/{name}.parquet"
        meta = file_metadata(info, name)
        part = write_part(root, path, rows, meta, docs[name])
        if part is None:
            part = write_empty(root, path, rows.schema, meta, docs[name])
        out[name] = ExportedTable(name, None, (part,))
        _report(on_progress, name, list(out[name].files), 1)
    return out


def _mentioned_animals(
    con: duckdb.DuckDBPyConnection, tables: Iterable[str], selected: tuple[str, ...] | None
) -> list[str]:
    """Return the animals chosen and those the exported tables mention, with the animals
    merged ones went into, so that every animal id in the export is described."""
    views = [t.view for t in TIME_TABLES if t.name in tables and t.name != "descriptors"]
    sql = " UNION ".join(f"SELECT animal_id FROM {view}" for view in views)
    ids = {a for (a,) in con.sql(sql).fetchall() if a is not None} | set(selected or ())
    merged_into = dict(con.sql("SELECT animal_id, merged_into FROM animals").fetchall())
    while grown := {merged_into.get(a) for a in ids} - ids - {None}:
        ids |= {str(a) for a in grown}
    return sorted(ids)


def provenance(record: Record, filters: Mapping[str, object], now: datetime) -> dict[str, object]:
    """Return what an export is: versions, farm, embedder, vocabulary, time and filters."""
    embedder = record.embedder
    return {
        "herdrecord_version": __version__,
        "schema_version": record.schema_version,
        "farm_id": record.farm_id,
        "embedder": {"name": embedder.name, "dim": embedder.dim, "metric": embedder.metric},
        "behaviours": list(record.behaviours),
        "exported_at": now.isoformat(timespec="seconds"),
        "filters": dict(filters),
    }


def file_metadata(info: Mapping[str, object], table: str) -> dict[str, str]:
    """Return one file's key-value metadata: `herdrecord.<key>`, JSON where not text."""
    names = {"herdrecord_version": "version"}
    metadata = {
        f"herdrecord.{names.get(k, k)}": v if isinstance(v, str) else json.dumps(v)
        for k, v in info.items()
    }
    return {**metadata, "herdrecord.table": table}


def write_manifest(root: Path, info: Mapping[str, object], tables: Iterable[ExportedTable]) -> Path:
    """Write `manifest.json`: provenance, filters, and every table's files and rows."""
    manifest = {
        "format": MANIFEST_FORMAT,
        **info,
        "tables": {
            table.name: {
                "rows": table.rows,
                "partitioning": table.partitioning,
                "files": [
                    {"path": f.path, "rows": f.rows, "size_bytes": f.size_bytes}
                    for f in table.files
                ],
            }
            for table in tables
        },
    }
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def write_dictionary(root: Path, dim: int, dictionary: str | None = None) -> Path:
    """Write `data-dictionary.md`: the views' columns, then what the export adds."""
    lines = [
        "",
        "## The export",
        "",
        "An export holds `animals/animals.parquet` and, for each time-based table, one file",
        "per month: `TABLE/month=YYYY-MM/TABLE-YYYY-MM.parquet` (hive partitioning: readers",
        "show `month` as a column). `links` holds the decisions about the exported tracklets,",
        "`events` the events in force, `events_history` every row; `descriptors` (one row per",
        f"exported tracklet: `device_id`, `track_id`, `day`, `descriptor` FLOAT[{dim}]) comes",
        "with --with-embeddings. A table without rows is one file of no rows,",
        "`TABLE/TABLE.parquet`, with its columns. Columns the export adds to the views above:",
        "",
        "| table | column | meaning |",
        "|---|---|---|",
        *(
            f"| `{table}` | `{column}` | {doc} |"
            for table, columns in EXPORT_COLUMNS.items()
            for column, doc in columns.items()
        ),
    ]
    path = root / "data-dictionary.md"
    views = dictionary if dictionary is not None else data_dictionary_markdown(dim)
    path.write_text(views + "\n".join(lines) + "\n")
    return path


def _report(
    on_progress: Callable[[ExportProgress], None] | None,
    table: str,
    files: list[ExportedFile],
    total: int,
) -> None:
    if on_progress is not None:
        on_progress(ExportProgress(table, len(files), total, sum(f.rows for f in files)))


__all__ = [
    "ExportFilters",
    "ExportOptions",
    "ExportProgress",
    "ExportResult",
    "ExportedFile",
    "ExportedTable",
    "export_parquet",
    "file_metadata",
    "provenance",
    "selected_animals",
]


def export_zip(
    record: Record,
    work_dir: Path,
    filters: ExportFilters | None = None,
    options: ExportOptions | None = None,
) -> Path:
    """Export into `work_dir` and pack the files into one zip there; return the zip's path.

    The zip stores the files as they are (Parquet is already zstd-compressed), so packing
    costs a copy, not a recompression.
    """
    result = export_parquet(record, work_dir / "export", filters, options)
    archive = work_dir / f"herdrecord-export-{record.farm_id}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as out:
        for path in sorted(result.out_dir.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(result.out_dir).as_posix())
    return archive
