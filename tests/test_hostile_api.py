"""The service against hostile callers: strangers with huge bodies, oversize and slow
bodies, edge keys posting for devices not theirs, and callers fishing for server paths."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import service_settings
from herdrecord.api.keys import add_key
from herdrecord.server import create_app
from herdrecord.store.record import create_record
from servers import start_server, stop_server


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _answer(sock: socket.socket, timeout_s: float) -> tuple[bytes, float]:
    """Read what the server answers until it closes or `timeout_s` pass; return it and the
    seconds to its first byte."""
    started = time.monotonic()
    sock.settimeout(timeout_s)
    data, first = b"", -1.0
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            if first < 0:
                first = time.monotonic() - started
            data += chunk
            if b"\r\n\r\n" in data and data.endswith(b"}"):
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return data, first


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, dict[str, str]]]:
    """A real `herdrecord serve` in a child process, with a short body timeout."""
    folder = tmp_path_factory.mktemp("hostile")
    record = create_record(str(folder / "herd"), service_settings(folder / "herd"))
    keys = {role: add_key(record, f"{role}-1", role, "test")[1] for role in ("analyst", "admin")}
    url, process = start_server(
        folder / "herd",
        folder / "serve.log",
        HERDRECORD_API_BODY_TIMEOUT_S="2",
        HERDRECORD_API_KEY_CACHE_S="0",
    )
    try:
        yield url, process.pid, keys
    finally:
        stop_server(process)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_huge_body_without_a_key_is_401_at_once_and_never_read(
    server: tuple[str, int, dict[str, str]],
) -> None:
    url, pid, _ = server
    size = 100 * 1024 * 1024
    before = _rss_bytes(pid)
    with _connect(url) as sock:
        sock.sendall(
            b"POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )

        def send_body() -> None:
            piece = b'{"sql": "' + b"x" * (1024 * 1024)
            try:
                for _ in range(100):
                    sock.sendall(piece)
            except OSError:
                pass  # the server closed: what we want

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        answer, first_s = _answer(sock, 15)
    grown = _rss_bytes(pid) - before
    print(f"401 after {first_s:.3f} s; server RSS grew {grown / 1e6:.1f} MB")
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"unauthorized"' in answer
    assert 0 <= first_s < 1.0
    assert grown < 50 * 1024 * 1024


def test_an_oversize_body_with_a_good_key_is_413_before_it_is_read(tmp_path: Path) -> None:
    settings = service_settings(tmp_path / "herd")
    record = create_record(str(tmp_path / "herd"), settings)
    analyst = {"Authorization": f"Bearer {add_key(record, 'a-1', 'analyst', 'test')[1]}"}
    sql = "select 1 -- " + "x" * (2 * 1024 * 1024)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/sql", json={"sql": sql}, headers=analyst)
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "too_large"
        assert "HERDRECORD_API_MAX_SMALL_BODY_BYTES" in response.json()["error"]["message"]
        # Streamed (no length given) it is refused as it passes the cap.
        streamed = client.post(
            "/v1/sql",
            content=iter([b'{"sql": "select 1 -- ', b"x" * (2 * 1024 * 1024), b'"}']),
            headers={**analyst, "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413, streamed.text
        assert client.post("/v1/sql", json={"sql": "select 1 as one"}, headers=analyst).json()


def test_a_body_sent_a_byte_at_a_time_is_cut_off(
    server: tuple[str, int, dict[str, str]],
) -> None:
    url, _, keys = server
    with _connect(url) as sock:
        sock.sendall(
            b"POST /v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {keys['analyst']}\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.5)
        while time.monotonic() - started < 10 and not answer:
            try:
                sock.sendall(b" ")
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
        waited = time.monotonic() - started
    print(f"a trickled body was cut off after {waited:.1f} s")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited < 5
