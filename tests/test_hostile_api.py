"""The service against hostile callers: strangers with huge bodies, oversize and slow
bodies, edge keys posting for devices not theirs, and callers fishing for server paths."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import make_batch, service_settings
from herdrecord.api.keys import add_key
from herdrecord.cli import app as cli_app
from herdrecord.contract.parquet import bulk_table_from_json
from herdrecord.server import create_app
from herdrecord.store.record import create_record
from servers import start_server, stop_server

runner = CliRunner()


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
        HERDRECORD_API_HEADER_TIMEOUT_S="2",
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


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any, dict]]:
    """A service with an edge key bound to dev-01, an unbound one, and an admin."""
    folder = tmp_path_factory.mktemp("bound")
    settings = service_settings(folder / "herd")
    record = create_record(str(folder / "herd"), settings)
    keys = {
        "bound": add_key(record, "edge-bound", "edge", "test", ["dev-01"])[1],
        "two": add_key(record, "edge-two", "edge", "test", ["dev-03", "dev-04"])[1],
        "unbound": add_key(record, "edge-any", "edge", "test")[1],
        "admin": add_key(record, "admin-1", "admin", "test")[1],
    }
    headers = {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}
    with TestClient(create_app(settings)) as client:
        yield client, record, headers


def _stored_batches(record: Any) -> list[str]:
    table = record.table("batches").to_lance().to_table(columns=["batch_id"])
    return sorted(table.column("batch_id").to_pylist())


@pytest.mark.parametrize(
    ("key", "device", "status"),
    [
        ("bound", "dev-01", 201),
        ("bound", "dev-02", 403),
        ("two", "dev-04", 201),
        ("two", "dev-01", 403),
        ("unbound", "dev-05", 201),  # a key that names no device: any (backward compatible)
        ("admin", "dev-06", 201),
    ],
)
def test_edge_keys_upload_only_for_their_devices(
    bound: tuple[TestClient, Any, dict], key: str, device: str, status: int
) -> None:
    client, record, headers = bound
    batch = make_batch(f"{device}/2026-11-21T06-{key}", device_id=device)
    before = _stored_batches(record)
    response = client.post("/v1/batches", json=batch, headers=headers[key])
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["error"]["code"] == "wrong_device"
        assert device in response.json()["error"]["message"]
        assert _stored_batches(record) == before
    else:
        assert batch["batch_id"] in _stored_batches(record)


def test_a_parquet_upload_with_one_foreign_batch_stores_none(
    bound: tuple[TestClient, Any, dict],
) -> None:
    client, record, headers = bound
    batches = [
        make_batch("dev-01/2026-11-22T06", device_id="dev-01"),
        make_batch("dev-02/2026-11-22T06", device_id="dev-02"),
    ]
    table = bulk_table_from_json(batches)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    before = _stored_batches(record)
    response = client.post(
        "/v1/batches",
        content=buffer.getvalue(),
        headers={**headers["bound"], "Content-Type": "application/vnd.apache.parquet"},
    )
    assert response.status_code == 403, response.text
    assert _stored_batches(record) == before


def test_keys_name_their_devices_in_the_api_and_the_cli(
    bound: tuple[TestClient, Any, dict], tmp_path: Path
) -> None:
    client, _, headers = bound
    made = client.post(
        "/v1/keys",
        json={"name": "edge-api", "role": "edge", "devices": ["dev-07"]},
        headers=headers["admin"],
    )
    assert made.status_code == 201, made.text
    assert made.json()["devices"] == ["dev-07"]
    own = {"Authorization": f"Bearer {made.json()['key']}"}
    foreign = make_batch("dev-08/2026-11-21T06", device_id="dev-08")
    assert client.post("/v1/batches", json=foreign, headers=own).status_code == 403
    listed = {
        k["name"]: k["devices"]
        for k in client.get("/v1/keys", headers=headers["admin"]).json()["keys"]
    }
    assert listed["edge-bound"] == ["dev-01"] and listed["edge-any"] == []
    vet = client.post(
        "/v1/keys",
        json={"name": "vet-x", "role": "vet", "devices": ["dev-01"]},
        headers=headers["admin"],
    )
    assert vet.status_code == 422, vet.text

    path = tmp_path / "herd"
    create_record(str(path), service_settings(path))
    added = runner.invoke(
        cli_app,
        [
            "keys",
            "add",
            str(path),
            "gate",
            "--role",
            "edge",
            "--device",
            "dev-01",
            "--device",
            "dev-02",
        ],
    )
    assert added.exit_code == 0, added.output
    unbound = runner.invoke(cli_app, ["keys", "add", str(path), "loose", "--role", "edge"])
    assert unbound.exit_code == 0 and "any device" in unbound.output
    listing = runner.invoke(cli_app, ["keys", "list", str(path)], env={"COLUMNS": "200"})
    assert "dev-01, dev-02" in listing.output and "any (unbound)" in listing.output


def test_health_tells_a_stranger_only_ok(bound: tuple[TestClient, Any, dict]) -> None:
    client, record, headers = bound
    assert client.get("/healthz").json() == {"status": "ok"}
    wrong = {"Authorization": "Bearer hr_000000000000_" + "x" * 43}
    assert client.get("/healthz", headers=wrong).json() == {"status": "ok"}
    told = client.get("/healthz", headers=headers["unbound"]).json()
    assert told["schema_version"] == record.schema_version and told["record"]


def test_errors_name_no_server_paths(bound: tuple[TestClient, Any, dict]) -> None:
    client, record, headers = bound
    folder = str(record.uri)
    for sql in (f"select * from '{folder}/animals.lance'", "select * from nosuch"):
        answer = client.post("/v1/sql", json={"sql": sql}, headers=headers["admin"])
        assert answer.status_code == 422, answer.text
        assert folder not in answer.text and "/tmp" not in answer.text, answer.text


def test_headers_sent_a_byte_at_a_time_are_cut_off(
    server: tuple[str, int, dict[str, str]],
) -> None:
    url, _, _ = server
    closed = False
    with _connect(url) as sock:
        sock.settimeout(0.5)
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        while time.monotonic() - started < 10:
            try:
                sock.sendall(b"X")
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        waited = time.monotonic() - started
    print(f"trickled headers were cut off after {waited:.1f} s")
    assert closed and waited < 5
