"""Past one machine, on engines that exist: two fleet-wide questions, each answered twice.

The questions, over every farm of a fleet:
  - the mean lying share per farm and ISO week;
  - per farm, the mean lying share of lame animals over the 3 days up to a lameness score of
    2 or more, against the farm's animals with no such score on those same days.
Run it on a fleet root (a directory or s3://bucket/prefix holding ROOT/<farm_id> records) and
the fleet's Parquet export, made by `herdrecord fleet export ROOT --out EXPORT`:

    python examples/fleet_scale_out.py ROOT EXPORT

1. DuckDB over the Parquet export: one process, any machine with the files (or an S3
   prefix); the hive directories give `farm_id` and `month` as columns.
2. Ray Data over the farms' Lance tables (`herdrecord.query.fleet_engine`, the `fleet` extra:
   `pip install 'herdrecord[fleet]'`): one read task per fragment of every farm, on a local
   Ray, or on a cluster when RAY_ADDRESS names one (`RAY_ADDRESS=auto python ...` on a node of
   it). Nothing goes through a writer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pyarrow as pa

from herdrecord.config import Settings
from herdrecord.query.fleet import fleet_records

Sums = dict[tuple[str, str], tuple[float, int]]  # (farm, week) -> (sum of lying_share, days)


def by_duckdb(export: Path) -> Sums:
    """Question 1 by DuckDB over the fleet's Parquet export."""
    rows = duckdb.sql(
        f"SELECT farm_id, strftime(date_trunc('week', day), '%G-W%V') AS week, "
        f"sum(lying_share) AS total, count(*) AS n "
        f"FROM read_parquet('{export}/days/**/*.parquet', hive_partitioning = true) "
        "GROUP BY ALL"
    ).fetchall()
    return {(farm, week): (float(total), int(n)) for farm, week, total, n in rows}


def by_ray(root: str, settings: Settings) -> Sums:
    """Question 1 by Ray Data over every farm's Lance `days`."""
    from herdrecord.query.fleet_engine import weekly_lying_share

    rows = weekly_lying_share(fleet_records(root, settings)).to_pylist()
    return {
        (r["farm_id"], r["week"]): (r["lying_share"] * r["animal_days"], r["animal_days"])
        for r in rows
    }


def lameness_by_duckdb(export: Path, min_score: float = 2, days: int = 3) -> pa.Table:
    """Question 2 by DuckDB over the export (whose `events` are the events in force)."""
    return duckdb.sql(
        f"""
        WITH days AS (
            SELECT farm_id, animal_id, day, lying_share::DOUBLE AS lying_share
            FROM read_parquet('{export}/days/**/*.parquet', hive_partitioning = true)
        ),
        scores AS (
            SELECT DISTINCT farm_id, animal_id, CAST(timezone('UTC', "at") AS DATE) AS scored_on
            FROM read_parquet('{export}/events/**/*.parquet', hive_partitioning = true)
            WHERE kind = 'lameness' AND value >= {float(min_score)}
        ),
        windows AS (
            SELECT DISTINCT farm_id, animal_id,
                   CAST(scored_on - CAST(back AS INTEGER) AS DATE) AS day
            FROM scores, range({int(days)}) AS r(back)
        ),
        cases AS (SELECT d.* FROM days d JOIN windows w USING (farm_id, animal_id, day)),
        controls AS (
            SELECT d.* FROM days d
            WHERE (d.farm_id, d.day) IN (SELECT farm_id, day FROM windows)
              AND (d.farm_id, d.animal_id) NOT IN (SELECT farm_id, animal_id FROM scores)
        ),
        per_farm AS (
            SELECT farm_id, 'case' AS role, count(DISTINCT animal_id) AS animals,
                   count(*) AS n, avg(lying_share) AS share FROM cases GROUP BY ALL
            UNION ALL
            SELECT farm_id, 'control', count(DISTINCT animal_id), count(*), avg(lying_share)
            FROM controls GROUP BY ALL
        )
        SELECT f.farm_id,
               coalesce(c.animals, 0) AS cases, coalesce(c.n, 0) AS case_days,
               c.share AS case_lying_share,
               coalesce(k.animals, 0) AS controls, coalesce(k.n, 0) AS control_days,
               k.share AS control_lying_share
        FROM (SELECT DISTINCT farm_id FROM days) f
        LEFT JOIN per_farm c ON c.farm_id = f.farm_id AND c.role = 'case'
        LEFT JOIN per_farm k ON k.farm_id = f.farm_id AND k.role = 'control'
        ORDER BY f.farm_id
        """
    ).to_arrow_table()


def lameness_by_ray(root: str, settings: Settings) -> pa.Table:
    """Question 2 by Ray Data over every farm's Lance `days` and `events`."""
    from herdrecord.query.fleet_engine import lying_before_lameness

    return lying_before_lameness(fleet_records(root, settings), min_score=2, days=3)


def _show_weeks(title: str, sums: Sums) -> None:
    print(f"\n{title}")
    for (farm, week), (total, n) in sorted(sums.items()):
        print(f"  {farm:<12} {week}  lying share {total / n:.3f}  ({n} animal-days)")


def _show_lameness(title: str, rows: pa.Table) -> None:
    print(f"\n{title}")
    for row in rows.to_pylist():
        case, control = row["case_lying_share"], row["control_lying_share"]
        print(
            f"  {row['farm_id']:<12} lame {row['cases']} animals, {row['case_days']} days: "
            f"{'-' if case is None else f'{case:.3f}'}; controls {row['controls']} animals, "
            f"{row['control_days']} days: {'-' if control is None else f'{control:.3f}'}"
        )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    root, export = argv[1], Path(argv[2])
    settings = Settings()
    _show_weeks("1. Lying share per week: DuckDB over the Parquet export", by_duckdb(export))
    _show_weeks("1. Lying share per week: Ray Data over Lance", by_ray(root, settings))
    _show_lameness("2. Before lameness: DuckDB over the Parquet export", lameness_by_duckdb(export))
    _show_lameness("2. Before lameness: Ray Data over Lance", lameness_by_ray(root, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
