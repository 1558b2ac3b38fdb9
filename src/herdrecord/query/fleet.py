"""Many barns: a fleet is a root (a directory or s3://bucket/prefix) holding one record per
farm, `ROOT/<farm_id>`, each with its own single writer (the central `herdrecord serve` of that
farm, which the farm's edge devices push to).

Why one record per farm, not one record for all: writes never contend across farms (one
writer per record is the rule Lance's commits need, and a farm is the natural unit of it);
the re-ID pool, linking and pens are a farm's own (animals do not walk between barns; a sale
is an event, an arrival a new animal); a farm's data can be retained, exported, backed up or
deleted alone. Reads span the fleet: `fleet_connection` gives DuckDB views of every farm's
tables unioned with `farm_id` first in every row; `fleet_query` runs a named cohort query on
every farm; `fleet_export` writes one Parquet dataset per table, hive-partitioned by
`farm_id` (and month), that DuckDB, Polars, Spark or Ray read as one table. Questions past one
process run on Ray Data over the farms' Lance tables: `herdrecord.query.fleet_engine` (the
`fleet` extra).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.query.export import (
    ExportFilters,
    ExportOptions,
    ExportProgress,
    export_parquet,
    new_directory,
    staged,
    write_dictionary,
)
from herdrecord.query.views import VIEWS, relation_over, view_relations
from herdrecord.store.location import location_of
from herdrecord.store.record import Record, is_record, open_record
from herdrecord.store.sql import sql_literal


def fleet_records(root: str, settings: Settings) -> list[Record]:
    """Return the records directly under `root`, one per farm, sorted by farm id."""
    location = location_of(root, settings.storage_options)
    records = [
        # Reads only: no power-cut recovery (it takes the writer lock); `open` does that.
        open_record(child.uri, settings, recover=False)
        for child in location.children()
        if is_record(child)
    ]
    if not records:
        raise InvalidInput(f"{location.uri} holds no farm records (expected ROOT/<farm_id>/)")
    records.sort(key=lambda r: r.farm_id)
    seen: dict[str, str] = {}
    for record in records:
        if record.farm_id in seen:
            raise InvalidInput(
                f"farm {record.farm_id} has two records: {seen[record.farm_id]} and {record.uri}"
            )
        seen[record.farm_id] = record.uri
    return records


def fleet_connection(records: list[Record]) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection whose views (the single-record views: animals, days, ...)
    hold every farm's rows, with `farm_id` as their first column; its catalog holds those
    views and nothing else."""
    con = duckdb.connect()
    farms = [(record.farm_id, view_relations(record, con)) for record in records]
    for view in VIEWS:
        # The ledger has its own farm_id (the batches'); it is the farm's, so it is replaced.
        columns = farms[0][1][view].columns
        rest = "* EXCLUDE (farm_id)" if "farm_id" in columns else "*"
        parts = [
            f"SELECT {_literal(farm)} AS farm_id, {rest} FROM _farm{number}"
            for number, (farm, _) in enumerate(farms)
        ]
        sources = {f"_farm{number}": views[view] for number, (_, views) in enumerate(farms)}
        relation_over(con, " UNION ALL BY NAME ".join(parts), sources).create_view(view)
    return con


def fleet_query(records: list[Record], name: str, params: Mapping[str, str]) -> pa.Table:
    """Run a named cohort query on every farm; return its rows with `farm_id` first."""
    from herdrecord.query.cohorts import run_query

    tables = []
    for record in records:
        rows = run_query(record, name, params)
        farm = pa.array([record.farm_id] * rows.num_rows, pa.string())
        tables.append(rows.add_column(0, "farm_id", farm))
    return pa.concat_tables(tables, promote_options="permissive")


@dataclass(frozen=True)
class FleetExport:
    """What a fleet export wrote: per farm, its tables' rows."""

    out_dir: Path
    rows: dict[str, dict[str, int]]  # farm -> table -> rows


def fleet_export(
    records: list[Record],
    out_dir: Path,
    filters: ExportFilters | None = None,
    options: ExportOptions | None = None,
    on_farm: Callable[[str], None] | None = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> FleetExport:
    """Export every farm as `OUT/TABLE/farm_id=FARM/...` (hive partitions) with each farm's
    manifest in `OUT/farms/FARM/manifest.json`; one dictionary for all."""
    out_dir = new_directory(out_dir)
    rows: dict[str, dict[str, int]] = {}
    with staged(out_dir) as staging:
        for record in records:
            if on_farm is not None:
                on_farm(record.farm_id)
            farm_dir = staging / ".farm"
            result = export_parquet(record, farm_dir, filters, options, on_progress)
            for table in result.tables:
                if not result.tables[table].rows:  # no rows on this farm: no files
                    continue
                target = staging / table / f"farm_id={record.farm_id}"
                target.parent.mkdir(exist_ok=True)
                (farm_dir / table).rename(target)
            manifests = staging / "farms" / record.farm_id
            manifests.mkdir(parents=True)
            (farm_dir / "manifest.json").rename(manifests / "manifest.json")
            shutil.rmtree(farm_dir)
            rows[record.farm_id] = {name: t.rows for name, t in result.tables.items()}
        write_dictionary(staging, records[0].embedder.dim)
        (staging / "fleet.json").write_text(
            json.dumps({"farms": sorted(rows), "rows": rows, "partitioning": "farm_id"}, indent=2)
        )
    return FleetExport(out_dir, rows)


def _literal(text: str) -> str:
    if not re.fullmatch(r"[\x21-\x7e]+", text):
        raise InvalidInput(f"farm id {text!r} is not printable ASCII without spaces")
    return sql_literal(text)
