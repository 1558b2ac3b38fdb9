"""Benchmark fleet analytics: the hand-made fragment workers herdrecord had against Ray Data.

One generated fleet: `--farms` records, each with `--animals` animals' days over `--days`
days, written straight into the record's `days` table (the record's own schema) one month per
append, so each farm's table has a fragment a month, as a year of nightly day updates
compacted monthly would have. The question, the same three ways: mean lying share per farm
and ISO week over every animal-day.
  fragments   the path herdrecord had until Ray Data replaced it (`fleet.fragment_tasks` /
              `read_fragment`, copied here as they were): one task per fragment of every
              farm, each read by a spawned worker process (`--workers`), partial sums merged
  ray         `herdrecord.query.fleet_engine.weekly_lying_share`: lance-ray's read tasks (one
              per fragment) on a local Ray, partial sums in the tasks, merged by the driver;
              `ray cold` includes starting Ray and its workers, `ray warm` is the next run
  duckdb      one DuckDB process over each farm's Lance dataset (the reference answer)
Every way's answer is checked equal to DuckDB's before its time is kept.

Run: `.venv/bin/python benchmarks/fleet.py [--farms 4] [--animals 300] [--days 365]`.
Writes benchmarks/results/fleet.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.config import Settings
from herdrecord.query.fleet_engine import weekly_lying_share
from herdrecord.store.record import Record, create_record
from herdrecord.store.schema import days_schema

HERE = Path(__file__).resolve().parent
T = TypeVar("T")
Sums = dict[tuple[str, str], tuple[float, int]]  # (farm, week) -> (sum of lying_share, days)


def main() -> None:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farms", type=int, default=4)
    parser.add_argument("--animals", type=int, default=300)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herdrecord-fleet-") as scratch:
        root = Path(scratch) / "fleet"
        started = time.perf_counter()
        records = [
            _farm(root, f"farm-{n:02d}", args.animals, args.days, seed=n) for n in range(args.farms)
        ]
        made_s = time.perf_counter() - started
        expected, duckdb_s = _timed(lambda: by_duckdb(records))
        fragments, fragments_s = _timed(lambda: by_fragments(records, args.workers))
        _same("fragments", fragments, expected)

        cold, cold_s = _timed(lambda: _sums(weekly_lying_share(records)))
        _same("ray cold", cold, expected)
        warm, warm_s = _timed(lambda: _sums(weekly_lying_share(records)))
        _same("ray warm", warm, expected)
        fragment_count = sum(len(r.table("days").to_lance().get_fragments()) for r in records)
    rows = args.farms * args.animals * args.days
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "fleet": {
            "farms": args.farms,
            "animals_per_farm": args.animals,
            "days": args.days,
            "animal_days": rows,
            "fragments": fragment_count,
            "seconds_to_write": round(made_s, 1),
        },
        "workers": args.workers,
        "seconds": {
            "duckdb over Lance, one process": round(duckdb_s, 2),
            "fragments in spawned worker processes (removed)": round(fragments_s, 2),
            "ray data, cold (starting Ray)": round(cold_s, 2),
            "ray data, warm": round(warm_s, 2),
        },
        "groups": len(expected),
    }
    out = HERE / "results" / "fleet.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _farm(root: Path, farm: str, animals: int, days: int, seed: int) -> Record:
    """A farm's record whose days table holds `animals` x `days` rows, a fragment a month."""
    record = create_record(str(root / farm), Settings(retention_enabled=False), farm_id=farm)
    rng = np.random.default_rng(seed)
    first = date(2025, 1, 1)
    table = record.table("days")
    month: list[date] = []
    for offset in range(days + 1):
        day = first + timedelta(days=offset)
        if month and (offset == days or day.month != month[0].month):
            table.add(_days_rows(month, animals, rng))
            month = []
        month.append(day)
    return record


def _days_rows(days: list[date], animals: int, rng: np.random.Generator) -> pa.Table:
    n = len(days) * animals
    observed = rng.uniform(600, 720, n).astype(np.float32)
    share = rng.beta(6, 4, n).astype(np.float32)
    now = datetime.now(UTC)
    columns = {
        "animal_id": [f"P{a:05d}" for _ in days for a in range(animals)],
        "day": [d for d in days for _ in range(animals)],
        "pen_id": [f"pen-{a % 10}" for _ in days for a in range(animals)],
        "n_tracklets": np.full(n, 40, np.int32),
        "observed_min": observed,
        "behaviour_min": [[{"behaviour": "lying_sternal", "minutes": float(m)}] for m in observed],
        "lying_min": observed * share,
        "lying_share": share,
        "eating_min": None,
        "activity_index": (1 - share) / 2,
        "distance_px": np.zeros(n, np.float32),
        "mean_speed_px_s": np.zeros(n, np.float32),
        "walking_speed_px_s": None,
        "lying_bouts": np.full(n, 6, np.int32),
        "lying_bout_mean_min": None,
        "gait_mean": None,
        "gait_n": np.zeros(n, np.int32),
        "area_px": None,
        "keyframes": [[] for _ in range(n)],
        "link_confidence": None,
        "anomaly_z": None,
        "anomalies": [[] for _ in range(n)],
        "derived_at": [now] * n,
    }
    schema = days_schema()
    arrays = [
        pa.nulls(n, field.type)
        if columns[field.name] is None
        else pa.array(columns[field.name], field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def by_duckdb(records: list[Record]) -> Sums:
    """The reference: one DuckDB process over every farm's days dataset."""
    con = duckdb.connect()
    sums: Sums = {}
    for record in records:
        days = record.table("days").to_lance().to_table(columns=["day", "lying_share"])
        con.register("days", days)
        rows = con.sql(
            "SELECT strftime(date_trunc('week', day), '%G-W%V') AS week, "
            "sum(lying_share::DOUBLE), count(*) FROM days GROUP BY ALL"
        ).fetchall()
        sums.update({(record.farm_id, w): (float(t), int(n)) for w, t, n in rows})
    return sums


@dataclass(frozen=True)
class FragmentTask:
    """One fragment of one farm's table at one version (as herdrecord.query.fleet had it)."""

    farm_id: str
    uri: str
    version: int
    storage_options: dict[str, str] | None
    fragment_id: int


def fragment_tasks(records: list[Record], table: str) -> list[FragmentTask]:
    tasks = []
    for record in records:
        dataset = record.table(table).to_lance()
        options = record.location.storage_options
        for fragment in dataset.get_fragments():
            tasks.append(
                FragmentTask(
                    record.farm_id, dataset.uri, dataset.version, options, fragment.fragment_id
                )
            )
    return tasks


def read_fragment(task: FragmentTask, columns: list[str]) -> pa.Table:
    import lance

    dataset = lance.dataset(task.uri, version=task.version, storage_options=task.storage_options)
    fragment = dataset.get_fragment(task.fragment_id)
    rows = fragment.to_table(columns=columns)
    return rows.add_column(0, "farm_id", pa.array([task.farm_id] * rows.num_rows, pa.string()))


def by_fragments(records: list[Record], workers: int) -> Sums:
    """The removed path, as examples/fleet_scale_out.py ran it: spawned workers (Lance is not
    fork-safe) read the fragments, the parent sums their rows."""
    tasks = fragment_tasks(records, "days")
    columns = ["day", "lying_share"]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        tables = pool.map(read_fragment, tasks, [columns] * len(tasks))
        return _merge([_week_sums(table) for table in tables])


def _week_sums(table: pa.Table) -> Sums:
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


def _sums(table: pa.Table) -> Sums:
    return {
        (row["farm_id"], row["week"]): (row["lying_share"] * row["animal_days"], row["animal_days"])
        for row in table.to_pylist()
    }


def _same(name: str, got: Sums, expected: Sums) -> None:
    if got.keys() != expected.keys() or any(
        got[k][1] != n or abs(got[k][0] - total) > 1e-3 * max(1.0, abs(total))
        for k, (total, n) in expected.items()
    ):
        sys.exit(f"{name} disagrees with DuckDB")


def _timed(run: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = run()
    return value, time.perf_counter() - started


if __name__ == "__main__":
    main()
