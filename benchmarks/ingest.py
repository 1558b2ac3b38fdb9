"""Benchmark ingest: one simulated day of a 1,000-animal barn against a raw Lance write.

Side by side in one run, on the same data:
  raw        lance.write_dataset of the exact Arrow rows herdrecord stores, one call per table;
  bulk       herdrecord ingest of the day's Parquet bulk file (read, contract checks, content
             hashes, duplicate and track-id checks, grouped Lance appends, the ledger);
  json.gz    herdrecord ingest of the same day as one gzip JSON file per edge batch.
The ratio is raw seconds / herdrecord seconds (1.0 = as fast as the raw write; target >= 0.5).

Run: `.venv/bin/python benchmarks/ingest.py [--animals 1000] [--repeats 3]`.
Writes benchmarks/results/ingest.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import lance
import pyarrow as pa

from herdrecord.config import Settings
from herdrecord.contract.frames import stored_rows
from herdrecord.contract.models import EdgeBatch
from herdrecord.contract.parquet import write_bulk
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import batch_files, read_file
from herdrecord.simulation import SimulationConfig, simulate, write_simulation
from herdrecord.store.record import create_record
from herdrecord.store.schema import BATCH_TABLES

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=1000)
    parser.add_argument("--pens", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-json", action="store_true", help="skip the json.gz path")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="herdrecord-bench-"))
    try:
        result = run(args.animals, args.pens, args.repeats, not args.no_json, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = HERE / "results" / "ingest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    update_readme(result)
    print(json.dumps(result["summary"], indent=2))


def run(animals: int, pens: int, repeats: int, with_json: bool, work: Path) -> dict[str, object]:
    """Simulate the day, then time raw, bulk and json.gz ingest side by side."""
    started = time.perf_counter()
    config = SimulationConfig(animals=animals, pens=pens, days=1, seed=11, keyframes=True)
    simulation = simulate(config)
    simulate_s = time.perf_counter() - started
    bulk_path = work / "day.parquet"
    write_bulk([EdgeBatch.model_validate(b) for b in simulation.batches], bulk_path)
    json_dir = write_simulation(simulation, work / "sim").batches_dir if with_json else None
    frames = [c.frames for c in read_file(bulk_path, Settings().max_batch_bytes)]
    dim = config.embedding_dim
    tables = {
        name: pa.concat_tables([stored_rows(f, dim)[name] for f in frames if f is not None])
        for name in BATCH_TABLES
    }
    rows = {name: table.num_rows for name, table in tables.items()}
    total_rows = sum(rows.values())
    timings: dict[str, list[float]] = {"raw": [], "bulk": [], "json_gz": []}
    for attempt in range(repeats):
        timings["raw"].append(_time_raw(tables, work / f"raw-{attempt}"))
        timings["bulk"].append(_time_ingest([bulk_path], work / f"bulk-{attempt}", len(frames)))
        if json_dir is not None:
            timings["json_gz"].append(
                _time_ingest(batch_files([json_dir]), work / f"json-{attempt}", len(frames))
            )
    median = {k: statistics.median(v) for k, v in timings.items() if v}
    summary = {
        "rows": total_rows,
        "raw_s": round(median["raw"], 3),
        "bulk_s": round(median["bulk"], 3),
        "bulk_rows_per_s": round(total_rows / median["bulk"]),
        "bulk_ratio": round(median["raw"] / median["bulk"], 3),
    }
    if "json_gz" in median:
        summary |= {
            "json_gz_s": round(median["json_gz"], 3),
            "json_gz_rows_per_s": round(total_rows / median["json_gz"]),
            "json_gz_ratio": round(median["raw"] / median["json_gz"], 3),
        }
    return {
        "benchmark": "ingest",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "lance": lance.__version__,
        },
        "data": {
            "animals": animals,
            "pens": pens,
            "days": 1,
            "batches": len(frames),
            "rows_by_table": rows,
            "bulk_file_mb": round(bulk_path.stat().st_size / 2**20, 1),
            "simulate_s": round(simulate_s, 1),
        },
        "repeats": repeats,
        "timings_s": {k: [round(x, 3) for x in v] for k, v in timings.items() if v},
        "summary": summary,
    }


def _time_raw(tables: dict[str, pa.Table], folder: Path) -> float:
    folder.mkdir()
    started = time.perf_counter()
    for name, table in tables.items():
        lance.write_dataset(table, str(folder / f"{name}.lance"))
    return time.perf_counter() - started


def _time_ingest(files: list[Path], folder: Path, expected: int) -> float:
    record = create_record(str(folder), Settings())
    max_bytes = record.settings.max_batch_bytes
    started = time.perf_counter()
    report = ingest(record, (c for f in files for c in read_file(f, max_bytes)))
    seconds = time.perf_counter() - started
    if report.count("accepted") != expected:
        problems = [o.problems for o in report.outcomes if o.status == "rejected"][:3]
        raise SystemExit(f"benchmark data was not accepted whole: {problems}")
    return seconds


def update_readme(result: dict[str, object]) -> None:
    """Replace the ingest table in benchmarks/README.md with this run's figures."""
    summary = result["summary"]
    data = result["data"]
    assert isinstance(summary, dict) and isinstance(data, dict)
    lines = [
        "<!-- ingest:start -->",
        f"One simulated day, {data['animals']} animals in {data['pens']} pens, "
        f"{data['batches']} edge batches, {summary['rows']:,} rows; median of "
        f"{result['repeats']} runs, {result['when']}, {result['machine']['cpus']} CPUs.",  # type: ignore[index]
        "",
        "| path | seconds | rows/s | ratio to raw write |",
        "|---|---:|---:|---:|",
        f"| raw `lance.write_dataset`, one call per table | {summary['raw_s']} | "
        f"{round(summary['rows'] / summary['raw_s']):,} | 1.00 |",
        f"| herdrecord ingest, Parquet bulk form | {summary['bulk_s']} | "
        f"{summary['bulk_rows_per_s']:,} | {summary['bulk_ratio']:.2f} |",
    ]
    if "json_gz_s" in summary:
        lines.append(
            f"| herdrecord ingest, JSON.gz per batch | {summary['json_gz_s']} | "
            f"{summary['json_gz_rows_per_s']:,} | {summary['json_gz_ratio']:.2f} |"
        )
    lines.append("<!-- ingest:end -->")
    readme = HERE / "README.md"
    text = (
        readme.read_text()
        if readme.exists()
        else "# Benchmarks\n\n<!-- ingest:start -->\n<!-- ingest:end -->\n"
    )
    head, rest = text.split("<!-- ingest:start -->", 1)
    tail = rest.split("<!-- ingest:end -->", 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
