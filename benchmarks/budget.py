"""Benchmark the storage budget: a simulated year of a barn, with and without retention.

A breeding herd (default 20 sows in 2 pens, present all year through heats, inseminations,
pregnancies, farrowings and weanings; 365 days at edge rates: an observation every 30 s, a
sample every 10 min, 1-2 JPEG keyframes per tracklet) is delivered day by day, as the edge
does, to two records side by side in the same run (sows, because growers are sold within
about 100 days and a year of the same animals is what the budget is about):

  retained   the default retention tiers, applied as each day closes;
  raw        retention off: every row the edge sent is kept (the baseline).

Each day is ingested (bulk Parquet form) and linked in both. At the end both are compacted
(old versions dropped) and measured: MB per animal-year by table (live bytes of each table /
animal-days x 365; MB = 10^6 bytes) against the 94 MB budget and the 47 MB target, the ratio
retained / raw, and linking IDF1 (weighted by tracked seconds, against the simulator's truth)
of both records, online (as linked day by day) and after re-linking the whole year from what
each record kept.

Run: `.venv/bin/python benchmarks/budget.py [--animals 20 --pens 2 --days 365]`.
Writes benchmarks/results/budget.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from herdrecord.config import Settings
from herdrecord.contract.parquet import bulk_table_from_json
from herdrecord.days.budget import BudgetReport, measure_budget
from herdrecord.days.retention import compact
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import read_file
from herdrecord.linking.run import link_pending, relink_all
from herdrecord.linking.scoring import idf1
from herdrecord.simulation import SimulationConfig, iter_days
from herdrecord.store.compaction import compact_if_fragmented
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record, create_record

HERE = Path(__file__).resolve().parent
BUDGET_MB = 94.0
TARGET_MB = 47.0


def main() -> None:
    """Run the year and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=20)
    parser.add_argument("--pens", type=int, default=2)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="herdrecord-budget-"))
    try:
        result = run(args.animals, args.pens, args.days, args.seed, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = HERE / "results" / "budget.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_readme_table(result)
    print(json.dumps(result["summary"], indent=2))


def run(animals: int, pens: int, days: int, seed: int, work: Path) -> dict[str, object]:
    """Deliver the simulated year to both records; measure bytes and identity accuracy."""
    config = SimulationConfig(
        animals=0,
        pens=1,
        breeding=True,
        sows=animals,
        sow_pens=pens,
        arrival_rate_per_day=0.0,
        days=days,
        seed=seed,
        # The year must lie in the past: ingest refuses batches from a clock in the future.
        start=date.today() - timedelta(days=days + 1),
    )
    records = {
        "retained": create_record(str(work / "retained"), Settings(keep_versions_days=0)),
        "raw": create_record(
            str(work / "raw"), Settings(keep_versions_days=0, retention_enabled=False)
        ),
    }
    seconds = {name: 0.0 for name in records}
    truth: list[pa.Table] = []
    started = time.perf_counter()
    for d, day in enumerate(iter_days(config)):
        truth.append(day.truth_tracklets.select(["device_id", "track_id", "animal_id"]))
        bulk = work / "day.parquet"
        pq.write_table(bulk_table_from_json(day.batches), bulk)
        for name, record in records.items():
            t0 = time.perf_counter()
            report = ingest(record, read_file(bulk, record.settings.max_batch_bytes))
            link_pending(record)
            seconds[name] += time.perf_counter() - t0
            if report.count("rejected"):
                reasons = [o.problems for o in report.outcomes if o.status == "rejected"]
                raise SystemExit(f"day {d + 1}: {name} rejected batches: {reasons[:2]}")
        if d % 10 == 0 or d == days - 1:
            print(
                f"day {d + 1}/{days}: {time.perf_counter() - started:.0f} s "
                + ", ".join(f"{n} {s:.0f} s" for n, s in seconds.items()),
                flush=True,
            )
    compact(records["retained"])
    compact_if_fragmented(records["raw"], force=True)
    true_tracklets = pa.concat_tables(truth)
    budgets = {name: measure_budget(record) for name, record in records.items()}
    online = {name: _idf1(record, true_tracklets) for name, record in records.items()}
    relinked = {}
    for name, record in records.items():
        relink_all(record)
        relinked[name] = _idf1(record, true_tracklets)
    return {
        "data": {"sows": animals, "pens": pens, "days": days, "seed": seed},
        "seconds_ingest_and_link": {n: round(s, 1) for n, s in seconds.items()},
        "tables": {name: _tables(report) for name, report in budgets.items()},
        "summary": {
            name: {
                "animals": report.animals,
                "animal_days": report.animal_days,
                "mb_per_animal_year": round(report.measured_mb_per_animal_year, 2),
                "projected_mb_per_animal_year": round(report.projected_mb_per_animal_year, 2),
                "idf1_online": round(online[name], 4),
                "idf1_relinked": round(relinked[name], 4),
            }
            for name, report in budgets.items()
        }
        | {
            "ratio retained / raw bytes": round(
                budgets["retained"].measured_mb_per_animal_year
                / budgets["raw"].measured_mb_per_animal_year,
                3,
            ),
            "budget_mb": BUDGET_MB,
            "target_mb": TARGET_MB,
        },
    }


def _tables(report: BudgetReport) -> dict[str, float]:
    return {
        t.name: round(t.measured_mb_per_animal_year, 3)
        for t in sorted(report.tables, key=lambda t: -t.measured_mb_per_animal_year)
    }


def _idf1(record: Record, truth: pa.Table) -> float:
    """Return IDF1 of the record's current links against the truth, by tracked seconds."""
    tracklets = record.read_visible("tracklets", ["device_id", "track_id", "start", "end"])
    links = current_links(record)
    linked = {
        (d, t): a
        for d, t, a in zip(
            links.column("device_id").to_pylist(),
            links.column("track_id").to_pylist(),
            links.column("animal_id").to_pylist(),
            strict=True,
        )
    }
    true_of = {
        (d, t): a
        for d, t, a in zip(
            truth.column("device_id").to_pylist(),
            truth.column("track_id").to_pylist(),
            truth.column("animal_id").to_pylist(),
            strict=True,
        )
    }
    keys = list(
        zip(
            tracklets.column("device_id").to_pylist(),
            tracklets.column("track_id").to_pylist(),
            strict=True,
        )
    )
    start = np.asarray(tracklets.column("start").cast(pa.int64()).to_numpy()) / 1e6
    end = np.asarray(tracklets.column("end").cast(pa.int64()).to_numpy()) / 1e6
    scores = idf1(
        [true_of[k] for k in keys], [linked.get(k) for k in keys], weights=end - start + 1.0
    )
    return float(scores.idf1)


def write_readme_table(result: dict[str, object]) -> None:
    """Replace the budget section of benchmarks/README.md with this run's table."""
    summary = result["summary"]
    assert isinstance(summary, dict)
    tables = result["tables"]
    assert isinstance(tables, dict)
    data = result["data"]
    assert isinstance(data, dict)
    lines = [
        "<!-- budget:start -->",
        f"A simulated year: {data['sows']} sows in {data['pens']} pens, {data['days']} days at "
        "edge rates, delivered day by day.",
        "",
        "| | retained (default tiers) | raw (no retention) |",
        "|---|---:|---:|",
    ]
    retained, raw = summary["retained"], summary["raw"]
    for key, label in (
        ("mb_per_animal_year", "MB per animal-year, measured"),
        (
            "projected_mb_per_animal_year",
            "MB per animal-year that `budget` projects under the tiers",
        ),
        ("idf1_online", "IDF1, linked day by day"),
        ("idf1_relinked", "IDF1, whole year re-linked from what was kept"),
        ("animal_days", "animal-days"),
    ):
        lines.append(f"| {label} | {retained[key]} | {raw[key]} |")
    seconds = result["seconds_ingest_and_link"]
    assert isinstance(seconds, dict)
    lines.append(
        f"| seconds to ingest and link the year | {seconds['retained']} | {seconds['raw']} |"
    )
    lines += [
        "",
        f"Retained / raw bytes: **{summary['ratio retained / raw bytes']}**; budget "
        f"{BUDGET_MB:.0f} MB, target {TARGET_MB:.0f} MB per animal-year.",
        "",
        "| table | retained MB/animal-year | raw MB/animal-year |",
        "|---|---:|---:|",
    ]
    for name, size in tables["retained"].items():
        lines.append(f"| {name} | {size} | {tables['raw'].get(name, 0)} |")
    lines.append("<!-- budget:end -->")
    readme = HERE / "README.md"
    text = readme.read_text()
    block = "\n".join(lines)
    if "<!-- budget:start -->" in text:
        head, rest = text.split("<!-- budget:start -->", 1)
        text = head + block + rest.split("<!-- budget:end -->", 1)[1]
    else:
        text = text.rstrip() + "\n\n## Budget (`benchmarks/budget.py`)\n\n" + block + "\n"
    readme.write_text(text)


if __name__ == "__main__":
    main()
