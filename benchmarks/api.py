"""Benchmark the HTTP service on loopback against the library, on the same batches.

Side by side in one run:
  library    `herdrecord.ingest.ingestor` of day 1's batches (gzip JSON bytes, parsed and checked
             exactly as the service does), one call, into its own record: the raw baseline;
  http       the same bytes POSTed to `herdrecord serve` by 4 concurrent edge clients (one
             per upload, each acknowledged only once committed); ratio = library s / http s
             (target >= 0.7);
  readers    32 concurrent clients reading random animals' timelines, first with no writes,
             then while an edge client uploads day 2 and re-sends some of day 1 (retries);
             latency p50/p95/p99 of each phase.
At the end every batch is counted: acknowledged, present in the ledger, duplicated (a batch
id twice, or a tracklet stored twice) and lost — the last two must be 0.

Run: `.venv/bin/python benchmarks/api.py [--animals 400] [--pens 20]`.
Writes benchmarks/results/api.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx

from herdrecord.api.keys import add_key
from herdrecord.config import Settings
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import read_bytes
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import create_record, open_record

HERE = Path(__file__).resolve().parent
UPLOADERS = 4
READERS = 32


def main() -> None:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=400)
    parser.add_argument("--pens", type=int, default=20)
    parser.add_argument("--read-seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3, help="upload runs of each path")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="herdrecord-bench-api-"))
    try:
        result = run(args.animals, args.pens, args.read_seconds, args.repeats, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = HERE / "results" / "api.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    update_readme(result)
    print(json.dumps(result["summary"], indent=2))


def run(animals: int, pens: int, read_seconds: float, repeats: int, work: Path) -> dict[str, Any]:
    """Simulate two days, then time library and HTTP ingest and the readers."""
    start = date.today() - timedelta(days=3)  # ingest refuses clocks in the future
    config = SimulationConfig(animals=animals, pens=pens, days=2, seed=21, start=start)
    batches = simulate(config).batches
    bodies = {b["batch_id"]: gzip.compress(json.dumps(b).encode()) for b in batches}
    days = sorted({str(b["batch_id"]).split("/")[1][:10] for b in batches})
    day1 = [b["batch_id"] for b in batches if str(b["batch_id"]).split("/")[1][:10] == days[0]]
    day2 = [b["batch_id"] for b in batches if b["batch_id"] not in set(day1)]

    # Upload timings alternate library and HTTP runs on fresh records; the medians are
    # compared. The last HTTP run's record then serves the read phases.
    day1_sends = [(b, bodies[b]) for b in day1]
    library_runs, http_runs = [], []
    for attempt in range(repeats):
        library_runs.append(_library_ingest(work / f"library-{attempt}", [bodies[b] for b in day1]))
        if attempt < repeats - 1:
            path, keys = _new_served_record(work / f"served-{attempt}")
            url, process = _serve(path, work / f"serve-{attempt}.log")
            try:
                http_runs.append(asyncio.run(_upload(url, keys[0], day1_sends, {})))
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=120)
    path, (edge_key, vet_key) = _new_served_record(work / "served")
    url, process = _serve(path, work / "serve.log")
    acknowledged: dict[str, str] = {}
    try:
        http_runs.append(asyncio.run(_upload(url, edge_key, day1_sends, acknowledged)))
        httpx.post(f"{url}/v1/link", headers=_auth(edge_key), timeout=600).raise_for_status()
        animal_ids = _animal_ids(url, vet_key)
        idle = asyncio.run(_read(url, vet_key, animal_ids, read_seconds, None))
        retries = random.Random(5).sample(day1, k=max(1, len(day1) // 5))
        sends = [(b, bodies[b]) for b in day2] + [(b, bodies[b]) for b in retries]
        random.Random(6).shuffle(sends)
        busy = asyncio.run(
            _read(url, vet_key, animal_ids, read_seconds, (edge_key, sends, acknowledged))
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    counts = _count(path, acknowledged, day1 + day2)
    rows = sum(
        1 for b in batches for t in b["tracklets"] for _ in t["observations"]
    )  # observation rows of both days
    library_s, http_s = statistics.median(library_runs), statistics.median(http_runs)
    summary = {
        "library_s": round(library_s, 2),
        "http_s": round(http_s, 2),
        "upload_ratio": round(library_s / http_s, 3),
        "idle_read_ms": idle["latency_ms"],
        "busy_read_ms": busy["latency_ms"],
        "busy_reads_per_s": busy["reads_per_s"],
        "busy_upload_s": busy["upload_s"],
        **counts,
    }
    return {
        "benchmark": "api",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "data": {
            "animals": animals,
            "pens": pens,
            "days": 2,
            "batches_day1": len(day1),
            "batches_day2": len(day2),
            "resent_during_reads": len(retries),
            "observation_rows": rows,
            "mean_body_kb": round(statistics.mean(len(v) for v in bodies.values()) / 1024, 1),
            "uploaders": UPLOADERS,
            "upload_repeats": repeats,
            "readers": READERS,
            "read_seconds": read_seconds,
        },
        "upload_runs_s": {
            "library": [round(x, 2) for x in library_runs],
            "http": [round(x, 2) for x in http_runs],
        },
        "idle_reads": idle,
        "busy_reads": busy,
        "summary": summary,
    }


def _new_served_record(path: Path) -> tuple[Path, tuple[str, str]]:
    """Create a record to serve; return it and an edge and a vet key for it."""
    record = create_record(str(path), Settings())
    keys = (
        add_key(record, "edge-bench", "edge", "bench")[1],
        add_key(record, "vet-bench", "vet", "bench")[1],
    )
    return path, keys


def _library_ingest(path: Path, bodies: list[bytes]) -> float:
    record = create_record(str(path), Settings())
    max_bytes = record.settings.max_batch_bytes
    started = time.perf_counter()
    report = ingest(record, (read_bytes(io.BytesIO(b), "bench", max_bytes) for b in bodies))
    seconds = time.perf_counter() - started
    if report.count("accepted") != len(bodies):
        raise SystemExit(f"library ingest did not accept every batch: {report.outcomes[:3]}")
    return seconds


def _serve(path: Path, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **os.environ,
        # Linking only when asked: the library baseline does not link either.
        "HERDRECORD_API_LINK_IDLE_S": "3600",
        "HERDRECORD_API_LINK_MAX_DELAY_S": "3600",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "herdrecord",
                "serve",
                str(path),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start: {log.read_text()}")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _upload(
    url: str, key: str, sends: list[tuple[str, bytes]], acknowledged: dict[str, str]
) -> float:
    """Send every body with UPLOADERS concurrent clients; return the wall seconds."""
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in sends:
        queue.put_nowait(item)
    headers = {**_auth(key), "Content-Type": "application/json", "Content-Encoding": "gzip"}

    async def uploader(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            batch_id, body = queue.get_nowait()
            response = await client.post("/v1/batches", content=body, headers=headers)
            if response.status_code not in (200, 201):
                raise SystemExit(f"{batch_id}: {response.status_code} {response.text[:300]}")
            status = response.json()["status"]
            if status == "accepted" and batch_id in acknowledged:
                raise SystemExit(f"{batch_id} was accepted twice")
            acknowledged.setdefault(batch_id, status)

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await asyncio.gather(*(uploader(client) for _ in range(UPLOADERS)))
    return time.perf_counter() - started


def _animal_ids(url: str, key: str) -> list[str]:
    response = httpx.get(
        f"{url}/v1/animals", params={"limit": 1000}, headers=_auth(key), timeout=60
    )
    response.raise_for_status()
    return [a["animal_id"] for a in response.json()["animals"] if a["days"] > 0]


async def _read(
    url: str,
    key: str,
    animal_ids: list[str],
    seconds: float,
    edge: tuple[str, list[tuple[str, bytes]], dict[str, str]] | None,
) -> dict[str, Any]:
    """READERS clients read timelines for `seconds` (or until the edge finishes, if longer)."""
    latencies: list[float] = []
    failures = 0
    upload_s = None
    done = asyncio.Event()

    async def reader(client: httpx.AsyncClient, seed: int) -> None:
        nonlocal failures
        pick = random.Random(seed)
        while not done.is_set():
            animal = pick.choice(animal_ids)
            started = time.perf_counter()
            response = await client.get(f"/v1/animals/{animal}/timeline", headers=_auth(key))
            latencies.append(time.perf_counter() - started)
            failures += response.status_code != 200

    async def clock() -> None:
        nonlocal upload_s
        started = time.perf_counter()
        if edge is not None:
            edge_key, sends, acknowledged = edge
            upload_s = round(await _upload_one_client(url, edge_key, sends, acknowledged), 2)
        left = seconds - (time.perf_counter() - started)
        if left > 0:
            await asyncio.sleep(left)
        done.set()

    limits = httpx.Limits(max_connections=READERS + 4)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await asyncio.gather(clock(), *(reader(client, i) for i in range(READERS)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    return {
        "reads": len(latencies),
        "failed": failures,
        "reads_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
        "upload_s": upload_s,
    }


async def _upload_one_client(
    url: str, key: str, sends: list[tuple[str, bytes]], acknowledged: dict[str, str]
) -> float:
    """The edge during the read phase: one client, batches one after another, as a device."""
    headers = {**_auth(key), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        for batch_id, body in sends:
            response = await client.post("/v1/batches", content=body, headers=headers)
            if response.status_code not in (200, 201):
                raise SystemExit(f"{batch_id}: {response.status_code} {response.text[:300]}")
            status = response.json()["status"]
            if status == "accepted" and acknowledged.get(batch_id) == "accepted":
                raise SystemExit(f"{batch_id} was accepted twice")
            acknowledged.setdefault(batch_id, status)
    return time.perf_counter() - started


def _count(path: Path, acknowledged: dict[str, str], sent: list[str]) -> dict[str, int]:
    """Count, in the record as left on disk, what was acknowledged, present, doubled, lost."""
    record = open_record(str(path), Settings())
    ledger = record.committed_batch_ids().to_pylist()
    con = duckdb.connect()
    con.register(
        "tracklets",
        record.table("tracklets").to_lance().to_table(columns=["device_id", "track_id"]),
    )
    doubled_tracklets = con.sql(
        "SELECT count(*) FROM (SELECT device_id, track_id FROM tracklets "
        "GROUP BY ALL HAVING count(*) > 1)"
    ).fetchall()[0][0]
    present = set(ledger)
    return {
        "batches_sent": len(sent),
        "batches_acknowledged": len(acknowledged),
        "batches_present": len(present),
        "duplicated": (len(ledger) - len(present)) + int(doubled_tracklets),
        "lost": len(set(acknowledged) - present),
    }


def update_readme(result: dict[str, Any]) -> None:
    """Replace the API table in benchmarks/README.md with this run's figures."""
    s, d = result["summary"], result["data"]
    idle, busy = s["idle_read_ms"], s["busy_read_ms"]
    lines = [
        "<!-- api:start -->",
        f"{d['animals']} animals in {d['pens']} pens, 2 simulated days, {d['batches_day1']} + "
        f"{d['batches_day2']} gzip JSON batches (mean {d['mean_body_kb']} KB); "
        f"{result['when']}, {result['machine']['cpus']} CPUs (clients and server share them).",
        "",
        "| upload path | seconds | ratio to library |",
        "|---|---:|---:|",
        f"| library `ingest`, one call, day 1 (median of {d['upload_repeats']}) | "
        f"{s['library_s']} | 1.00 |",
        f"| HTTP, {d['uploaders']} concurrent edge clients, day 1 (median of "
        f"{d['upload_repeats']}) | {s['http_s']} | {s['upload_ratio']:.2f} |",
        "",
        f"| timeline reads, {d['readers']} concurrent readers | reads/s | p50 ms | p95 ms | "
        "p99 ms |",
        "|---|---:|---:|---:|---:|",
        f"| no writes | {result['idle_reads']['reads_per_s']} | {idle['p50']} | {idle['p95']} | "
        f"{idle['p99']} |",
        f"| while the edge uploads day 2 and re-sends {d['resent_during_reads']} day-1 batches "
        f"({s['busy_upload_s']} s) | {s['busy_reads_per_s']} | {busy['p50']} | {busy['p95']} | "
        f"{busy['p99']} |",
        "",
        f"Batches: {s['batches_sent']} sent, {s['batches_acknowledged']} acknowledged, "
        f"{s['batches_present']} present, **{s['duplicated']} duplicated, {s['lost']} lost**.",
        "<!-- api:end -->",
    ]
    readme = HERE / "README.md"
    text = readme.read_text()
    if "<!-- api:start -->" not in text:
        text += "\n<!-- api:start -->\n<!-- api:end -->\n"
    head, rest = text.split("<!-- api:start -->", 1)
    tail = rest.split("<!-- api:end -->", 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
