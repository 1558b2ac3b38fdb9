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


def start_server(path: Path | str, log: Path, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
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


def start_s3_server(log: Path) -> tuple[dict[str, str], subprocess.Popen[bytes]]:
    """Start moto's S3 server on a free loopback port; return Lance-style storage options
    for it once it answers and refuses a second conditional create with 412 (the writer
    lock relies on that)."""
    import boto3
    from botocore.exceptions import ClientError

    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    options = {
        "aws_access_key_id": "test-key",
        "aws_secret_access_key": "test-secret",
        "aws_region": "us-east-1",
        "aws_endpoint": f"http://127.0.0.1:{port}",
        "allow_http": "true",
    }
    client = boto3.client(
        "s3",
        endpoint_url=options["aws_endpoint"],
        aws_access_key_id=options["aws_access_key_id"],
        aws_secret_access_key=options["aws_secret_access_key"],
        region_name=options["aws_region"],
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"moto did not start: {log.read_text()}") from None
            time.sleep(0.1)
    client.create_bucket(Bucket="herdrecord-probe")
    client.put_object(Bucket="herdrecord-probe", Key="probe", Body=b"1", IfNoneMatch="*")
    try:
        client.put_object(Bucket="herdrecord-probe", Key="probe", Body=b"2", IfNoneMatch="*")
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 412, f"a second conditional create answered {status}, not 412"
    else:
        process.kill()
        raise AssertionError("the S3 server accepted a second conditional create (no 412)")
    # The lease is renewed with If-Match and taken over with a conditional delete: a stale
    # ETag must be refused for both.
    stale = client.head_object(Bucket="herdrecord-probe", Key="probe")["ETag"]
    client.put_object(Bucket="herdrecord-probe", Key="probe", Body=b"3", IfMatch=stale)
    for call in (
        lambda: client.put_object(Bucket="herdrecord-probe", Key="probe", Body=b"4", IfMatch=stale),
        lambda: client.delete_object(Bucket="herdrecord-probe", Key="probe", IfMatch=stale),
    ):
        try:
            call()
        except ClientError as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        else:
            process.kill()
            raise AssertionError("the S3 server ignored If-Match with a stale ETag")
    return options, process
