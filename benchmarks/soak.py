"""Soak the HTTP service: one edge writer and several readers for a fixed, bounded time on
loopback, then count what was kept.

The edge sends a simulated barn's gzip JSON batches one after another, as a device does,
and re-sends an earlier batch every few uploads (a retry after a lost acknowledgement);
readers fetch random animals' timelines and the herd list for the whole time. When the time
is up the server is stopped as a service manager stops it (SIGINT), and the record left on
disk is counted: batches acknowledged, present in the ledger, duplicated (a batch id twice, or
a tracklet stored twice) and lost (acknowledged but absent) — the last two must be 0 — and
`herdrecord check` must pass. Read latency percentiles are those of the whole soak.

Run: `.venv/bin/python benchmarks/soak.py [--seconds 120] [--readers 8] [--animals 60]`.
Writes benchmarks/results/soak.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from herdrecord.api.keys import add_key
from herdrecord.config import Settings
from herdrecord.ops.check import check_record
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import create_record, open_record

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from servers import start_server, stop_server  # noqa: E402

RESEND_EVERY = 5  # every 5th upload is a retry of an earlier batch


def main() -> None:
    """Run the soak and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--animals", type=int, default=60)
    parser.add_argument("--days", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herdrecord-soak-") as work:
        result = run(args.seconds, args.readers, args.animals, args.days, Path(work))
    (HERE / "results" / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    update_readme(result)
    print(json.dumps(result["summary"], indent=2))


def run(seconds: float, readers: int, animals: int, days: int, work: Path) -> dict[str, Any]:
    config = SimulationConfig(animals=animals, pens=max(1, animals // 12), days=days, seed=17)
    bodies = [
        (str(b["batch_id"]), gzip.compress(json.dumps(b).encode()))
        for b in simulate(config).batches
    ]
    path = work / "herd"
    record = create_record(str(path), Settings(retention_enabled=False))
    _, edge = add_key(record, "soak-edge", "edge", "soak")
    _, vet = add_key(record, "soak-vet", "vet", "soak")
    url, process = start_server(
        path, work / "serve.log", HERDRECORD_API_LINK_IDLE_S="1", HERDRECORD_API_KEY_CACHE_S="5"
    )
    try:
        soaked = asyncio.run(_soak(url, edge, vet, bodies, seconds, readers))
    finally:
        exit_code = stop_server(process)
    counted = _count(path, soaked["acknowledged"])
    check = check_record(open_record(str(path)))
    latencies = sorted(soaked["latencies"])

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    summary = {
        "seconds": round(soaked["elapsed"], 1),
        "uploads": soaked["uploads"],
        "resends": soaked["resends"],
        "upload_errors": soaked["upload_errors"],
        **counted,
        "check_ok": check.ok,
        "check_problems": [p.message for p in check.problems],
        "server_exit_code": exit_code,
        "reads": len(latencies),
        "read_errors": soaked["read_errors"],
        "reads_per_s": round(len(latencies) / soaked["elapsed"], 1),
        "read_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        "upload_ms_median": round(1000 * statistics.median(soaked["upload_s"]), 1),
    }
    return {
        "benchmark": "soak",
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": len(os.sched_getaffinity(0))},
        "data": {
            "animals": animals,
            "days": days,
            "batches_available": len(bodies),
            "readers": readers,
            "seconds": seconds,
        },
        "summary": summary,
    }


async def _soak(
    url: str,
    edge: str,
    vet: str,
    bodies: list[tuple[str, bytes]],
    seconds: float,
    readers: int,
) -> dict[str, Any]:
    acknowledged: dict[str, str] = {}
    latencies: list[float] = []
    upload_s: list[float] = []
    stats = Counter[str]()
    deadline = time.monotonic() + seconds
    started = time.perf_counter()

    async def writer(client: httpx.AsyncClient) -> None:
        headers = {
            "Authorization": f"Bearer {edge}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        pick = random.Random(3)
        sent = 0
        while time.monotonic() < deadline and sent < len(bodies):
            if sent and stats["uploads"] % RESEND_EVERY == RESEND_EVERY - 1:
                batch_id, body = bodies[pick.randrange(sent)]  # a retry
                stats["resends"] += 1
            else:
                batch_id, body = bodies[sent]
                sent += 1
            began = time.perf_counter()
            try:
                response = await client.post("/v1/batches", content=body, headers=headers)
            except httpx.TransportError:
                stats["upload_errors"] += 1
                continue
            upload_s.append(time.perf_counter() - began)
            stats["uploads"] += 1
            if response.status_code in (200, 201):
                acknowledged.setdefault(batch_id, response.json()["status"])
            else:
                stats["upload_errors"] += 1

    async def reader(client: httpx.AsyncClient, seed: int) -> None:
        pick = random.Random(seed)
        headers = {"Authorization": f"Bearer {vet}"}
        ids: list[str] = []
        while time.monotonic() < deadline:
            began = time.perf_counter()
            if not ids or pick.random() < 0.1:
                response = await client.get("/v1/animals", params={"limit": 1000}, headers=headers)
                if response.status_code == 200:
                    ids = [a["animal_id"] for a in response.json()["animals"] if a["days"]]
            else:
                response = await client.get(
                    f"/v1/animals/{pick.choice(ids)}/timeline", headers=headers
                )
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                stats["read_errors"] += 1
            if not ids:
                await asyncio.sleep(0.5)

    limits = httpx.Limits(max_connections=readers + 4)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        await asyncio.gather(writer(client), *(reader(client, i) for i in range(readers)))
    return {
        "acknowledged": acknowledged,
        "latencies": latencies,
        "upload_s": upload_s or [0.0],
        "elapsed": time.perf_counter() - started,
        "uploads": stats["uploads"],
        "resends": stats["resends"],
        "upload_errors": stats["upload_errors"],
        "read_errors": stats["read_errors"],
    }


def _count(path: Path, acknowledged: dict[str, str]) -> dict[str, int]:
    record = open_record(str(path), Settings())
    ledger = Counter(
        record.table("batches")
        .to_lance()
        .to_table(columns=["batch_id"])
        .column("batch_id")
        .to_pylist()
    )
    tracklets = record.table("tracklets").to_lance().to_table(columns=["device_id", "track_id"])
    keys = Counter(
        zip(
            tracklets.column("device_id").to_pylist(),
            tracklets.column("track_id").to_pylist(),
            strict=True,
        )
    )
    return {
        "batches_acknowledged": len(acknowledged),
        "batches_present": sum(1 for b in acknowledged if ledger.get(b)),
        "duplicated": sum(n - 1 for n in ledger.values() if n > 1)
        + sum(n - 1 for n in keys.values() if n > 1),
        "lost": sum(1 for b in acknowledged if not ledger.get(b)),
    }


def update_readme(result: dict[str, Any]) -> None:
    """Replace the soak table in benchmarks/README.md with this run's figures."""
    s, d = result["summary"], result["data"]
    lines = [
        "<!-- soak:start -->",
        f"{d['animals']} animals, {d['days']} simulated days available "
        f"({d['batches_available']} batches); one edge writer and {d['readers']} readers for "
        f"{s['seconds']} s; {result['when']}, {result['machine']['cpus']} CPUs.",
        "",
        "| uploads (re-sends) | acknowledged | present | duplicated | lost | check | "
        "reads | read p50 / p95 / p99 / max ms |",
        "|---:|---:|---:|---:|---:|---|---:|---|",
        f"| {s['uploads']} ({s['resends']}) | {s['batches_acknowledged']} | "
        f"{s['batches_present']} | **{s['duplicated']}** | **{s['lost']}** | "
        f"{'passed' if s['check_ok'] else 'FAILED'} | {s['reads']} ({s['read_errors']} errors) | "
        f"{s['read_ms']['p50']} / {s['read_ms']['p95']} / {s['read_ms']['p99']} / "
        f"{s['read_ms']['max']} |",
        "<!-- soak:end -->",
    ]
    readme = HERE / "README.md"
    text = readme.read_text()
    if "<!-- soak:start -->" not in text:
        text += (
            "\n## Soak (`benchmarks/soak.py`)\n\nOne edge writer sending a simulated barn's "
            "batches one after another (every 5th upload a retry of an earlier batch) and "
            "readers fetching timelines and the herd list, for a bounded time against "
            "`herdrecord serve` on loopback; then the server is stopped with SIGINT and the "
            "record on disk counted and checked.\n\n<!-- soak:start -->\n<!-- soak:end -->\n"
        )
    head, rest = text.split("<!-- soak:start -->", 1)
    tail = rest.split("<!-- soak:end -->", 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
