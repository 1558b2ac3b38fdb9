"""`herdrecord serve` in its own process on a free loopback port, for the tests that need a
real server (HTTP clients, schemathesis, the browser), and the Chromium flags they share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# Chromium for the browser tests and the page benchmark: headless, no sandbox (CI runs as
# root), and nothing that reaches for Google's servers.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(path: Path, log: Path, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
    """Start `herdrecord serve PATH` on a free loopback port; return its URL once it answers."""
    port = _free_port()
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "herdrecord", "serve", str(path), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"serve did not answer in 60 s: {log.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> int:
    """Stop the server as Ctrl-C or a service manager does (SIGINT, then SIGTERM); return
    its exit code."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
