"""Benchmark hostile input: replay issue 19's findings against a real `herdrecord serve`.

Each input goes to a served record on loopback, one at a time. For each the run reports the
status, the reply's size, the seconds to the answer and what the service's peak resident
memory grew by while it was answered (the peak is reset before each input through
/proc/PID/clear_refs), and whether the record is unchanged (every table's row count) after
an input that should store nothing. At the end `herdrecord check` must pass.

Run: `.venv/bin/python benchmarks/hostile.py [--pen-day-tracklets 50000]`.
Writes benchmarks/results/hostile.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

from herdrecord.api.keys import add_key
from herdrecord.config import Settings
from herdrecord.contract.parquet import bulk_table_from_json
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.simulation.hostile import BOMBS, simultaneous_copies
from herdrecord.store.record import create_record, open_record
from readme_tables import replace_section

HERE = Path(__file__).resolve().parent
TABLES = ("batches", "tracklets", "samples", "observations", "events", "animals", "api_keys")


@dataclass
class Outcome:
    """What one hostile input got."""

    name: str
    expected: str
    status: str
    reply_bytes: int
    seconds: float
    peak_rss_growth_mb: float
    unchanged: bool | None  # None where the input is allowed to store something


class Service:
    """A `herdrecord serve` child on loopback and the keys to call it with."""

    def __init__(self, path: Path, log: Path) -> None:
        record = create_record(str(path), Settings())
        self.path = path
        self.keys = {
            "edge": add_key(record, "edge-1", "edge", "bench", ["dev-01"])[1],
            "vet": add_key(record, "vet-1", "vet", "bench")[1],
            "analyst": add_key(record, "analyst-1", "analyst", "bench")[1],
        }
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HERDRECORD_API_LINK_IDLE_S": "3600",
            "HERDRECORD_API_LINK_MAX_DELAY_S": "3600",
            "HERDRECORD_API_HEADER_TIMEOUT_S": "5",
            "HERDRECORD_API_BODY_TIMEOUT_S": "10",
        }
        command = [sys.executable, "-m", "herdrecord", "serve", str(path), "--port"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, str(self.port), "--log-level", "warning"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.process.kill()
        raise SystemExit(f"the server did not start: {log.read_text()}")

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def rss_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        return 0

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def counts(self) -> dict[str, int]:
        record = open_record(str(self.path))
        return {name: record.table(name).count_rows() for name in TABLES}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


Reply = tuple[str, int]  # status (or what happened) and the reply's size in bytes


def measure(
    service: Service, name: str, expected: str, send: Callable[[], Reply], stores: bool = False
) -> Outcome:
    """Send one input; return what it got and what it cost the service."""
    before = service.counts()
    service.reset_peak()
    resident = service.rss_kb("VmRSS")
    started = time.perf_counter()
    status, size = send()
    seconds = time.perf_counter() - started
    grown = max(0, service.rss_kb("VmHWM") - resident) / 1024
    unchanged = None if stores else service.counts() == before
    outcome = Outcome(name, expected, status, size, round(seconds, 3), round(grown, 1), unchanged)
    print(f"{name}: {status} in {seconds:.2f} s, {size:,} bytes, peak +{grown:.0f} MB")
    return outcome


def _post(service: Service, path: str, role: str | None, **kwargs: Any) -> Reply:
    headers = {**(service.auth(role) if role else {}), **kwargs.pop("headers", {})}
    response = httpx.post(f"{service.url}{path}", headers=headers, timeout=300, **kwargs)
    return str(response.status_code), len(response.content)


def _get(service: Service, path: str, role: str | None) -> Reply:
    headers = service.auth(role) if role else {}
    response = httpx.get(f"{service.url}{path}", headers=headers, timeout=60)
    return str(response.status_code), len(response.content)


def _sql(service: Service, sql: str) -> Reply:
    return _post(service, "/v1/sql", "analyst", json={"sql": sql})


def _keyless_huge_body(service: Service) -> Reply:
    """Stream 100 MB to /v1/sql with no key; return the status line's code."""
    size = 100 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        head = "POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Content-Length: {size}\r\n\r\n".encode())

        def send_body() -> None:
            try:
                for _ in range(100):
                    sock.sendall(b"x" * (1024 * 1024))
            except OSError:
                pass

        threading.Thread(target=send_body, daemon=True).start()
        answer = sock.recv(65536)
    return answer.split(b" ", 2)[1].decode() if answer else "closed", len(answer)


def _slow_headers(service: Service) -> Reply:
    """Send a header a byte every half second; return how the service ended it."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        sock.settimeout(0.5)
        started = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 200:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1024) == b"":
                    return f"closed after {time.monotonic() - started:.0f} s", 0
            except TimeoutError:
                continue
            except OSError:
                return f"closed after {time.monotonic() - started:.0f} s", 0
    return "held open", 0


def _concurrent_sql(service: Service, n: int) -> Reply:
    slow = "select count(*) from range(300000000) a"
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda _: _sql(service, slow), range(n)))
    codes = sorted(code for code, _ in replies)
    return ",".join(codes), sum(size for _, size in replies)


def _pen_day(batch: dict[str, Any], folder: Path, n: int) -> bytes:
    """One Parquet upload of `n` one-sample tracklets in one pen-day."""
    path = folder / "pen-day.parquet"
    flood = {**simultaneous_copies(batch, n), "batch_id": "dev-01/flood"}
    pq.write_table(bulk_table_from_json([flood]), path, compression="zstd")
    return path.read_bytes()


def run(work: Path, pen_day_tracklets: int) -> dict[str, Any]:
    day = simulate(SimulationConfig(animals=6, pens=1, days=1, seed=5, keyframes=True))
    template = day.batches[0]
    service = Service(work / "herd", work / "serve.log")
    outcomes: list[Outcome] = []
    try:
        _post(service, "/v1/batches", "edge", json=template)  # warm up: imports, tables
        for name, build in BOMBS.items():
            body, content_type = build(template, work)
            headers = {"Content-Type": content_type}
            outcomes.append(
                measure(
                    service,
                    name,
                    "422",
                    lambda b=body, h=headers: _post(  # type: ignore[misc]
                        service, "/v1/batches", "edge", content=b, headers=h
                    ),
                )
            )
        other_device = {**template, "batch_id": "dev-02/theirs", "device_id": "dev-02"}
        cases: list[tuple[str, str, Callable[[], Reply]]] = [
            ("keyless 100 MB body to /v1/sql", "401", lambda: _keyless_huge_body(service)),
            ("keyless /healthz", "200", lambda: _get(service, "/healthz", None)),
            (
                "edge key bound to dev-01 posts as dev-02",
                "403",
                lambda: _post(service, "/v1/batches", "edge", json=other_device),
            ),
            (
                "analyst reads _api_keys",
                "4xx",
                lambda: _sql(service, "select name, role, key_sha256 from _api_keys"),
            ),
            (
                "analyst lists internal views",
                "200",
                lambda: _sql(
                    service,
                    "select table_name from information_schema.tables "
                    "where table_name like '\\_%' escape '\\'",
                ),
            ),
            (
                "SELECT length(repeat('x', 2000000000))",
                "4xx",
                lambda: _sql(service, "select length(repeat('x', 2000000000))"),
            ),
            (
                "a 400 MB result of strings",
                "4xx",
                lambda: _sql(service, "select repeat('x', 1000) as s from range(400000)"),
            ),
            ("4 slow queries at once", "200s and 429s", lambda: _concurrent_sql(service, 4)),
            (
                "timeline of dates 9999-12-31",
                "422",
                lambda: _get(service, "/v1/events?from=9999-12-31&to=9999-12-31", "vet"),
            ),
            ("a header trickled a byte at a time", "closed", lambda: _slow_headers(service)),
        ]
        for name, expected, send in cases:
            outcomes.append(measure(service, name, expected, send))
        if pen_day_tracklets:
            body = _pen_day(template, work, pen_day_tracklets)
            parquet = {"Content-Type": "application/vnd.apache.parquet"}
            outcomes.append(
                measure(
                    service,
                    f"{pen_day_tracklets:,} one-sample tracklets in one pen-day: upload",
                    "201",
                    lambda: _post(service, "/v1/batches", "edge", content=body, headers=parquet),
                    stores=True,
                )
            )
            outcomes.append(
                measure(
                    service,
                    f"{pen_day_tracklets:,} one-sample tracklets in one pen-day: link",
                    "200",
                    lambda: _post(service, "/v1/link", "edge"),
                    stores=True,
                )
            )
    finally:
        service.stop()
    check = subprocess.run(
        [sys.executable, "-m", "herdrecord", "check", str(work / "herd")],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "benchmark": "hostile",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "outcomes": [asdict(o) for o in outcomes],
        "check_exit_code": check.returncode,
    }


def update_readme(result: dict[str, Any]) -> None:
    """Replace the hostile-input table in benchmarks/README.md with this run's figures."""
    lines = [
        f"{result['when']}, {result['machine']['cpus']} CPUs; `herdrecord check` after the "
        f"run exited {result['check_exit_code']}.",
        "",
        "| input | expected | got | reply bytes | seconds | service peak RSS growth MB | "
        "record unchanged |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for o in result["outcomes"]:
        unchanged = {True: "yes", False: "**no**", None: "(stores)"}[o["unchanged"]]
        lines.append(
            f"| {o['name']} | {o['expected']} | {o['status']} | {o['reply_bytes']:,} | "
            f"{o['seconds']} | {o['peak_rss_growth_mb']} | {unchanged} |"
        )
    replace_section(
        "hostile",
        lines,
        "## Hostile input (`benchmarks/hostile.py`)\n\n"
        "Issue 19's findings replayed against `herdrecord serve` on loopback.",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pen-day-tracklets", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herdrecord-hostile-") as tmp:
        result = run(Path(tmp), args.pen_day_tracklets)
    out = HERE / "results" / "hostile.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    update_readme(result)
    print(json.dumps(result["outcomes"], indent=2))


if __name__ == "__main__":
    main()
