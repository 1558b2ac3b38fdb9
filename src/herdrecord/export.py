"""Parquet export for outcome studies: tracklets with their current animal, and animals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from herdrecord import __version__
from herdrecord.errors import InvalidInput
from herdrecord.links import current_links
from herdrecord.schema import tabular_columns
from herdrecord.store import Record


@dataclass(frozen=True)
class ExportResult:
    """Files written by an export and their row counts."""

    out_dir: Path
    files: dict[str, Path]
    rows: dict[str, int]


def export_parquet(record: Record, out_dir: Path) -> ExportResult:
    """Write `tracklets/` and `animals/` Parquet datasets under `out_dir`."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInput(f"{out_dir} exists and is not empty; choose a new directory")
    con = duckdb.connect()
    columns = tabular_columns(record.table("tracklets").schema)
    con.register("t", record.read_visible("tracklets", columns))
    con.register("l", current_links(record))
    tracklets = con.sql(
        """
        SELECT t.farm_id, t.device_id, t.track_id, t.camera_id, t.pen_id, t.start, t."end",
               t.tag_id, l.animal_id, l.score AS link_score, l.margin AS link_margin,
               l.method AS link_method, l.decided_at AS linked_at
        FROM t LEFT JOIN l USING (device_id, track_id)
        ORDER BY t.start, t.device_id, t.track_id
        """
    ).to_arrow_table()
    animals = record.table("animals").to_lance().to_table().sort_by("animal_id")
    provenance = _provenance(record)
    files = {}
    rows = {}
    for name, table in (("tracklets", tracklets), ("animals", animals)):
        folder = out_dir / name
        folder.mkdir(parents=True)
        path = folder / "part-0.parquet"
        pq.write_table(table.replace_schema_metadata(provenance), path, compression="zstd")
        files[name] = path
        rows[name] = table.num_rows
    return ExportResult(out_dir, files, rows)


def _provenance(record: Record) -> dict[str, str]:
    """Return the metadata that tells what an exported file is."""
    embedder = record.embedder
    return {
        "herdrecord.version": __version__,
        "herdrecord.schema_version": str(record.schema_version),
        "herdrecord.farm_id": record.farm_id,
        "herdrecord.embedder": json.dumps(
            {"name": embedder.name, "dim": embedder.dim, "metric": embedder.metric}
        ),
    }


__all__ = ["ExportResult", "export_parquet"]
