"""The latency of `POST /v1/sql` with `SELECT 1` against a real `herdrecord serve` on loopback:
a new sandbox process per query started cold (HERDRECORD_SQL_WARM_PROCESSES=0, as every
query ran before warm processes) against one started ahead with its libraries loaded (=1).
Each query still runs in a process of its own, in both.

    .venv/bin/python benchmarks/sql_latency.py [--calls 5] [--gap 25]

Calls are `--gap` seconds apart, so that the warm process that replaces the one used (it
starts when a query ends) has loaded its libraries by the next call: on a loaded machine that
takes long, so give a gap longer than a cold call. A last series sends the calls back to
back, where a call finds its replacement still loading. Writes
benchmarks/results/sql_latency.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from herdrecord.api.keys import add_key
from herdrecord.config import Settings
from herdrecord.query.lockdown import read_rows, sandbox_connection
from herdrecord.store.record import create_record

HERE = Path(__file__).resolve().parent
SQL = {"sql": "SELECT 1 AS one"}


def main() -> None:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5, help="calls per series")
    parser.add_argument("--gap", type=float, default=25.0, help="seconds between calls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herdrecord-sql-bench-") as tmp:
        work = Path(tmp)
        record = create_record(str(work / "herd"), Settings())
        key = add_key(record, "analyst-bench", "analyst", "bench")[1]
        steps = _child_steps(work / "herd", repeats=args.calls)
        series = {
            "cold": _series(work, key, warm=0, calls=args.calls, gap_s=args.gap),
            "warm": _series(work, key, warm=1, calls=args.calls, gap_s=args.gap),
            "warm_back_to_back": _series(work, key, warm=1, calls=args.calls, gap_s=0.0),
        }
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "calls": args.calls,
        "gap_s": args.gap,
        "series": series,
        "child_steps": steps,
    }
    out = HERE / "results" / "sql_latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    update_readme(result)
    print(json.dumps({name: s["median_s"] for name, s in series.items()}))


def _series(work: Path, key: str, warm: int, calls: int, gap_s: float) -> dict[str, Any]:
    """Serve the record with `warm` processes; time `calls` SELECT 1 queries."""
    url, server = _serve(work / "herd", work / f"serve-{warm}-{gap_s}.log", warm)
    headers = {"Authorization": f"Bearer {key}"}
    seconds: list[float] = []
    loads: list[float] = []
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            # The first query after start finds no warm process (they start from it on).
            _ask(client, headers)
            for _ in range(calls):
                time.sleep(gap_s)
                loads.append(os.getloadavg()[0])
                seconds.append(_ask(client, headers))
    finally:
        server.terminate()
        server.wait(timeout=30)
    ordered = sorted(seconds)
    return {
        "warm_processes": warm,
        "gap_s": gap_s,
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "max_s": round(ordered[-1], 3),
        "min_s": round(ordered[0], 3),
        "load_average_1min": round(statistics.mean(loads), 2),
    }


def _child_steps(path: Path, repeats: int) -> dict[str, float]:
    """Time what a warm process does once its query arrives (open the record, build and lock
    the views, run SELECT 1), here in this process: wall and CPU seconds, medians."""
    settings = Settings()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeats + 1):  # the first pays one-time costs, as a warm process does
        started, started_cpu = time.perf_counter(), time.process_time()
        con = sandbox_connection(path, settings)
        read_rows(con, SQL["sql"], settings)
        con.close()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {
        "first_wall_s": round(wall[0], 3),
        "first_cpu_s": round(cpu[0], 3),
        "median_wall_s": round(statistics.median(wall[1:]), 3),
        "median_cpu_s": round(statistics.median(cpu[1:]), 3),
    }


def _ask(client: httpx.Client, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    answer = client.post("/v1/sql", json=SQL, headers=headers)
    seconds = time.perf_counter() - started
    if answer.status_code != 200 or answer.json()["rows"] != [[1]]:
        raise SystemExit(f"SELECT 1 failed: {answer.status_code} {answer.text}")
    return seconds


def _serve(path: Path, log: Path, warm: int) -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "HERDRECORD_SQL_WARM_PROCESSES": str(warm)}
    command = [sys.executable, "-m", "herdrecord", "serve", str(path), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start: {log.read_text()}")


def update_readme(result: dict[str, Any]) -> None:
    """Replace the SQL latency table in benchmarks/README.md with this run's figures."""
    rows = {
        "cold": "a new process per query, started cold (`HERDRECORD_SQL_WARM_PROCESSES=0`)",
        "warm": "a process started ahead, libraries loaded (`=1`, the default)",
        "warm_back_to_back": "the same, calls back to back (its replacement still loading)",
    }
    lines = [
        "<!-- sql-latency:start -->",
        f"`POST /v1/sql` of `SELECT 1` on loopback, {result['calls']} calls per series, "
        f"{result['gap_s']:g} s apart unless back to back; {result['when']}, "
        f"{result['machine']['cpus']} CPUs shared with other work (load average in the table).",
        "",
        "| sandbox process | median s | min s | max s | load average |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in rows.items():
        s = result["series"][name]
        lines.append(
            f"| {label} | {s['median_s']} | {s['min_s']} | {s['max_s']} | "
            f"{s['load_average_1min']} |"
        )
    steps = result["child_steps"]
    lines += [
        "",
        "What a warm process does once its query arrives (open the record, build and lock the "
        f"views, run the query) takes {steps['first_cpu_s']} s of CPU the first time "
        f"({steps['first_wall_s']} s wall at this load), {steps['median_cpu_s']} s after.",
        "<!-- sql-latency:end -->",
    ]
    readme = HERE / "README.md"
    text = readme.read_text()
    if "<!-- sql-latency:start -->" not in text:
        text += "\n<!-- sql-latency:start -->\n<!-- sql-latency:end -->\n"
    head, rest = text.split("<!-- sql-latency:start -->", 1)
    tail = rest.split("<!-- sql-latency:end -->", 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
