"""Past one machine, on engines that exist: three ways to answer one fleet-wide question.

The question: mean lying share per farm and week, over every farm of a fleet. Run it on a
fleet root (a directory or s3://bucket/prefix holding ROOT/<farm_id> records) and, for the
first way, a fleet export made by `herdrecord fleet export ROOT --out EXPORT`:

    python examples/fleet_scale_out.py ROOT EXPORT

1. DuckDB over the Parquet export: one process, any machine with the files (or an S3
   prefix); the hive directories give `farm_id` and `month` as columns.
2. Lance fragments, in parallel: each farm's `days` table is a list of fragments; each
   fragment is scanned by its own worker process (here a process pool; on a cluster, a Ray
   task or a Spark partition — `ray.data.read_lance` and the Lance Spark connector split
   a table the same way) and the partial sums are combined. Nothing goes through a writer.
3. Ray Data over Lance, when `ray` is installed (`pip install "ray[data]"`): the same plan
   on a Ray cluster; skipped otherwise.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.config import Settings
from herdrecord.query.fleet import fleet_records, fragment_tasks, read_fragment

Sums = dict[tuple[str, str], tuple[float, int]]  # (farm, week) -> (sum of lying_share, days)


def by_duckdb(export: Path) -> Sums:
    """Way 1: DuckDB over the fleet's Parquet export."""
    rows = duckdb.sql(
        f"SELECT farm_id, strftime(date_trunc('week', day), '%G-W%V') AS week, "
        f"sum(lying_share) AS total, count(*) AS n "
        f"FROM read_parquet('{export}/days/**/*.parquet', hive_partitioning = true) "
        "GROUP BY ALL"
    ).fetchall()
    return {(farm, week): (float(total), int(n)) for farm, week, total, n in rows}


def _week_sums(table: pa.Table) -> Sums:
    """Sum lying share per farm and ISO week of rows with farm_id, day and lying_share."""
    weeks = pc.strftime(pc.cast(table.column("day"), pa.timestamp("s")), format="%G-W%V")
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    columns = (table.column("farm_id").to_pylist(), weeks.to_pylist())
    shares = table.column("lying_share").to_pylist()
    for farm, week, share in zip(*columns, shares, strict=True):
        sums[(farm, week)][0] += share
        sums[(farm, week)][1] += 1
    return {key: (total, int(n)) for key, (total, n) in sums.items()}


def _merge(parts: list[Sums]) -> Sums:
    merged: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for part in parts:
        for key, (total, n) in part.items():
            merged[key][0] += total
            merged[key][1] += n
    return {key: (total, int(n)) for key, (total, n) in merged.items()}


def by_fragments(root: str, settings: Settings, workers: int = 4) -> Sums:
    """Way 2: every fragment of every farm's `days` read by a worker process; each worker's
    rows summed, the partial sums merged. (Lance is not fork-safe: workers are spawned.)"""
    tasks = fragment_tasks(fleet_records(root, settings), "days")
    columns = ["day", "lying_share"]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        tables = pool.map(read_fragment, tasks, [columns] * len(tasks))
        return _merge([_week_sums(table) for table in tables])


def by_ray(root: str, settings: Settings) -> Sums | None:
    """Way 3: Ray Data's Lance reader (None when ray is not installed)."""
    try:
        import ray
    except ImportError:
        return None
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    parts = []
    for record in fleet_records(root, settings):
        dataset = record.table("days").to_lance()
        data = ray.data.read_lance(
            dataset.uri,
            columns=["day", "lying_share"],
            storage_options=record.location.storage_options,
        )
        table = pa.concat_tables(list(data.iter_batches(batch_format="pyarrow")))
        farm = pa.array([record.farm_id] * table.num_rows, pa.string())
        parts.append(_week_sums(table.add_column(0, "farm_id", farm)))
    return _merge(parts)


def _show(title: str, sums: Sums | None) -> None:
    print(f"\n{title}")
    if sums is None:
        print("  (ray is not installed: skipped)")
        return
    for (farm, week), (total, n) in sorted(sums.items()):
        print(f"  {farm:<12} {week}  lying share {total / n:.3f}  ({n} animal-days)")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    root, export = argv[1], Path(argv[2])
    settings = Settings()
    _show("1. DuckDB over the Parquet export", by_duckdb(export))
    _show("2. Lance fragments in parallel worker processes", by_fragments(root, settings))
    _show("3. Ray Data over Lance", by_ray(root, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
