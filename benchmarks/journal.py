"""Benchmark what the intake journal costs an upload's acknowledgement.

The service's writer (`api/writer.py`) is driven in-process with the same gzip JSON uploads
of one simulated day, on fresh records, with and without the journal:
  journal     each group's bytes committed to SQLite (WAL, synchronous=FULL: fsynced) before
              its Lance commit, marked after it, and cleared by an os.sync at most every
              HERDRECORD_JOURNAL_SYNC_S (the service's path);
  none        the Lance commit alone (what the service did before the journal).
Each is run with 1 client (upload, wait for the answer, next: the acknowledgement's latency)
and with 4 concurrent clients (throughput, with group commit). Bodies are parsed before the
clock starts (parsing costs the same either way). The two modes run in pairs, back to back
and in alternating order, and the median of the pairs' ratios is kept, so a machine whose
load drifts (other work beside it) still compares like with like. The journal's own calls
are timed too: on the acknowledgement's path (journal write with its fsync, and marking) per
upload, and off it (the periodic os.sync and clearing) per sync.

Run: `.venv/bin/python benchmarks/journal.py [--animals 40] [--pens 8] [--days 2] [--repeats 3]`.
Writes benchmarks/results/journal.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from herdrecord.api.writer import Writer
from herdrecord.config import Settings
from herdrecord.contract.limits import BulkLimits
from herdrecord.ingest.group_commit import UploadRefused, parse_upload
from herdrecord.ingest.journal import Journal, Received, open_journal
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import create_record

HERE = Path(__file__).resolve().parent
CLIENTS = (1, 4)


def main() -> None:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=40)
    parser.add_argument("--pens", type=int, default=8)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    start = date.today() - timedelta(days=args.days + 1)  # ingest refuses future clocks
    config = SimulationConfig(
        animals=args.animals, pens=args.pens, days=args.days, seed=11, start=start
    )
    bodies = [gzip.compress(json.dumps(b).encode()) for b in simulate(config).batches]
    work = Path(tempfile.mkdtemp(prefix="herdrecord-bench-journal-"))
    runs: dict[str, list[dict[str, float]]] = {}
    ratios: dict[int, list[float]] = {clients: [] for clients in CLIENTS}
    extra_p50: dict[int, list[float]] = {clients: [] for clients in CLIENTS}
    try:
        for attempt in range(args.repeats):
            for clients in CLIENTS:
                pair = {}
                modes = ("none", "journal") if attempt % 2 == 0 else ("journal", "none")
                for mode in modes:
                    folder = work / f"{mode}-{clients}-{attempt}"
                    pair[mode] = asyncio.run(_run(folder, bodies, mode == "journal", clients))
                    runs.setdefault(f"{mode}/{clients}", []).append(pair[mode])
                    shutil.rmtree(folder, ignore_errors=True)
                ratios[clients].append(
                    pair["journal"]["uploads_per_s"] / pair["none"]["uploads_per_s"]
                )
                extra_p50[clients].append(pair["journal"]["p50_ms"] - pair["none"]["p50_ms"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, dict[str, float]] = {key: _median(results) for key, results in runs.items()}
    for clients in CLIENTS:
        summary[f"cost/{clients}"] = {
            "uploads_per_s_ratio": round(statistics.median(ratios[clients]), 3),
            "extra_p50_ms": round(statistics.median(extra_p50[clients]), 1),
        }
    result = {
        "benchmark": "journal",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "data": {
            "animals": args.animals,
            "pens": args.pens,
            "days": args.days,
            "uploads": len(bodies),
            "mean_upload_kb": round(sum(map(len, bodies)) / len(bodies) / 1024, 1),
            "repeats": args.repeats,
        },
        "summary": summary,
    }
    out = HERE / "results" / "journal.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


async def _run(
    folder: Path, bodies: list[bytes], journalled: bool, clients: int
) -> dict[str, float]:
    settings = Settings(lock_timeout_s=30.0, api_link_idle_s=3600.0, api_link_max_delay_s=3600.0)
    record = create_record(str(folder), settings)
    journal = open_journal(record) if journalled else None
    uploads = []
    for body in bodies:
        parsed = parse_upload(
            "application/json",
            "gzip",
            body,
            1 << 26,
            "upload by bench",
            BulkLimits.from_settings(Settings()),
        )
        assert not isinstance(parsed, UploadRefused)
        uploads.append((parsed, Received("upload by bench", "application/json", "gzip", body)))
    timed = {"ack_path_s": 0.0, "sync_s": 0.0}
    if journal is not None:
        _time_calls(journal, timed)
    writer = Writer(record, journal)
    writer.start(link_pending_now=False)
    queue = list(uploads)
    latencies: list[float] = []

    async def client() -> None:
        while queue:
            candidates, received = queue.pop(0)
            sent = time.perf_counter()
            outcomes = await writer.upload(candidates, received)
            latencies.append(time.perf_counter() - sent)
            assert all(o.status == "accepted" for o in outcomes), outcomes

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - started
    await writer.close()
    if journal is not None:
        assert journal.entries() == [], "the close syncs and clears the journal"
        journal.close()
    latencies.sort()
    return {
        "seconds": seconds,
        "uploads_per_s": len(uploads) / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "syncs": float(writer.stats.syncs),
        "journal_ms_per_upload": 1000 * timed["ack_path_s"] / len(uploads),
        "ms_per_sync": 1000 * timed["sync_s"] / max(1, writer.stats.syncs),
    }


def _time_calls(journal: Journal, timed: dict[str, float]) -> None:
    """Add the time of the journal's calls to `timed`: on the acknowledgement's path (write,
    mark) and off it (sync and clear)."""

    def timer(fn: Callable[..., Any], key: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timed[key] += time.perf_counter() - started

        return call

    journal.add = timer(journal.add, "ack_path_s")  # type: ignore[method-assign]
    journal.settle = timer(journal.settle, "ack_path_s")  # type: ignore[method-assign]
    journal.make_durable = timer(journal.make_durable, "sync_s")  # type: ignore[method-assign]


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in results), 2) for key in results[0]}


if __name__ == "__main__":
    main()
