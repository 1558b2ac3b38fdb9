"""A refusal reaches the client: answering before the body is read never resets it away.

Against real `herdrecord serve` processes on loopback, a client that writes its body
slowly and reads the answer only after it has sent everything (as Python's urllib does)
uploads 1, 10 and 60 MB bodies with no key, with a vet key, and over the body cap. Each
reads the intended status and JSON error, and the service's memory stays flat: under the
cap the service reads and drops the rest of the body, so the client's sending ends well;
past the cap or the drain's time limit it closes, and the answer is already out. With
`Expect: 100-continue` the refusal comes before the body, and no body byte is sent.
`herdrecord push` asks for that, so a revoked key costs one request head and one line.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
from typer.testing import CliRunner

from herdrecord.api.keys import add_key, revoke_key
from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.errors import PushFailed
from herdrecord.ingest.ingestor import BatchOutcome
from herdrecord.ingest.journal import JOURNAL_FILE, Journal, Received
from herdrecord.ingest.push import PushClock, PushPolicy, push_outbox
from herdrecord.store.record import create_record
from servers import start_server, stop_server

MB = 1_000_000
SIZES = [1 * MB, 10 * MB, 60 * MB]
TIGHT_CAP = 256 * 1024  # the tight service's body cap: every size above is over it
PIECE = 64 * 1024  # the slow client writes this much, then pauses
PAUSE_S = 0.002  # about 30 MB/s: the service answers long before the body is out
FLAT_MIB = 16  # most the service's resident memory may grow while taking the uploads

runner = CliRunner()


@dataclass
class Service:
    """A running `herdrecord serve` and its keys (edge, vet, and a revoked edge key)."""

    url: str
    process: subprocess.Popen[bytes]
    keys: dict[str, str]
    log: Path

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def answers(self, status: int) -> int:
        """Return how many uploads the access log shows answered with `status`."""
        return self.log.read_text().count(f'"POST /v1/batches HTTP/1.1" {status}')

    def uploads(self) -> int:
        """Return how many uploads reached the writer."""
        vet = {"Authorization": f"Bearer {self.keys['vet']}"}  # keyless health says only ok
        return int(httpx.get(f"{self.url}/healthz", headers=vet).json()["uploads"])


def _serve(folder: Path, **env: str) -> Service:
    path = folder / "herd"
    record = create_record(str(path), Settings())
    keys = {
        "edge": add_key(record, "barn-1", "edge", "test")[1],
        "vet": add_key(record, "dr-vet", "vet", "test")[1],
        "revoked": add_key(record, "old-box", "edge", "test")[1],
    }
    revoke_key(record, "old-box")
    log = folder / "serve.log"
    url, process = start_server(
        path, log, HERDRECORD_API_KEY_CACHE_S="0", HERDRECORD_API_LINK_IDLE_S="3600", **env
    )
    return Service(url, process, keys, log)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Service]]:
    """Two services, started side by side (each takes seconds to start): one with the
    default body cap (64 MiB: every body here is under it), one with a 256 KiB cap and a
    drain of at most 1 s."""
    with ThreadPoolExecutor(2) as pool:
        started = [
            pool.submit(_serve, tmp_path_factory.mktemp("roomy")),
            pool.submit(
                _serve,
                tmp_path_factory.mktemp("tight"),
                HERDRECORD_API_MAX_BODY_BYTES=str(TIGHT_CAP),
                HERDRECORD_API_REFUSAL_DRAIN_S="1",
            ),
        ]
        roomy, tight = (future.result() for future in started)
    try:
        yield roomy, tight
    finally:
        for service in (roomy, tight):
            stop_server(service.process)


@pytest.fixture(scope="module")
def roomy(services: tuple[Service, Service]) -> Service:
    return services[0]


@pytest.fixture(scope="module")
def tight(services: tuple[Service, Service]) -> Service:
    return services[1]


# --- a slow client that reads the answer only after sending (as urllib does) ---------------


@dataclass(frozen=True)
class Answer:
    """What the slow client saw."""

    status: int
    error: dict[str, Any]
    sent: int  # body bytes the client got out
    send_failed: bool  # the service closed while the client was still sending
    continued: bool  # a 100 Continue came first
    closed: bool  # the service closed the connection after its answer
    seconds: float


def slow_upload(
    service: Service,
    size: int,
    key: str | None = None,
    *,
    expect: bool = False,
    chunked: bool = False,
    piece: int = PIECE,
    pause_s: float = PAUSE_S,
) -> Answer:
    """POST `size` body bytes to /v1/batches in pieces with pauses; then read the answer
    (also after a failed send: the answer may have come before the close)."""
    started = time.monotonic()
    sock = socket.create_connection(service.address, timeout=30)
    http = h11.Connection(h11.CLIENT)
    headers = [
        ("Host", "{}:{}".format(*service.address)),
        ("Content-Type", "application/json"),
        ("Connection", "close"),  # as urllib sends it: the service may close after answering
    ]
    headers.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size)))
    if key is not None:
        headers.append(("Authorization", f"Bearer {key}"))
    if expect:
        headers.append(("Expect", "100-continue"))
    sock.sendall(http.send(h11.Request(method="POST", target="/v1/batches", headers=headers)))
    continued, final = False, None
    if expect:  # wait for the answer to the head: a 100 Continue or the refusal
        event = _next_head(http, sock)
        continued = isinstance(event, h11.InformationalResponse)
        final = None if continued else event
    sent, send_failed = 0, False
    if final is None:
        block = b"x" * piece
        try:
            while sent < size:
                data = block[: min(piece, size - sent)]
                sock.sendall(http.send(h11.Data(data=data)))
                sent += len(data)
                time.sleep(pause_s)
            sock.sendall(http.send(h11.EndOfMessage()) or b"")
        except OSError:
            send_failed = True
        final = _final_head(http, sock)
    assert isinstance(final, h11.Response), final
    body = b""
    while not isinstance(event := _next(http, sock), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        body += event.data
    closed = _closed(sock)
    sock.close()
    error = json.loads(body)["error"] if body else {}
    return Answer(
        final.status_code,
        error,
        sent,
        send_failed,
        continued,
        closed,
        time.monotonic() - started,
    )


def _next(http: h11.Connection, sock: socket.socket) -> Any:
    while (event := http.next_event()) is h11.NEED_DATA:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""  # what came before the reset was read already
        http.receive_data(data)
    return event


def _next_head(http: h11.Connection, sock: socket.socket) -> Any:
    """Return the next answer head: a 100 Continue, or the final answer."""
    return _next(http, sock)


def _final_head(http: h11.Connection, sock: socket.socket) -> Any:
    while isinstance(event := _next(http, sock), h11.InformationalResponse):
        pass
    return event


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(0.5)  # a service that closes does so right after its answer
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# --- the service's memory ---------------------------------------------------------------


class Resident:
    """The peak resident memory of a process while the block runs (Linux: /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start_mib = self.peak_mib = self.now()
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert found, status
        return int(found.group(1)) / 1024

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_mib = max(self.peak_mib, self.now())

    def __enter__(self) -> Resident:
        self.start_mib = self.peak_mib = self.now()
        self._watch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watch.join()

    @property
    def growth_mib(self) -> float:
        return self.peak_mib - self.start_mib


def _warm(service: Service) -> None:
    """Answer each kind of refusal once, so what is loaded lazily is loaded before measuring."""
    for key in (None, service.keys["vet"], service.keys["edge"]):
        slow_upload(service, 2 * PIECE, key, pause_s=0)


# --- the acceptance: slow clients without Expect -----------------------------------------


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_slow_uploads_without_a_key_or_with_a_vet_key_read_the_refusal(roomy: Service) -> None:
    _warm(roomy)
    cases = [(None, 401, "unauthorized"), (roomy.keys["vet"], 403, "forbidden")]
    stored = roomy.uploads()
    with Resident(roomy.process.pid) as memory:
        for size in SIZES:
            for key, status, code in cases:
                answer = slow_upload(roomy, size, key)
                assert (answer.status, answer.error["code"]) == (status, code), answer
                # Under the cap the service read the rest: the client's sending ended well.
                assert (answer.sent, answer.send_failed, answer.closed) == (size, False, True)
    assert memory.growth_mib < FLAT_MIB, f"{memory.growth_mib:.1f} MiB more while draining"
    assert roomy.uploads() == stored  # nothing discarded reached the writer


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_slow_uploads_over_the_cap_read_the_413(tight: Service, chunked: bool) -> None:
    _warm(tight)
    with Resident(tight.process.pid) as memory:
        for size in SIZES:
            answer = slow_upload(tight, size, tight.keys["edge"], chunked=chunked)
            assert answer.status == 413, answer
            assert answer.error["code"] == "too_large"
            assert "HERDRECORD_API_MAX_BODY_BYTES" in answer.error["message"]
            # Past the cap the service closes: the answer was out before it did.
            assert answer.closed and answer.sent < size
    assert memory.growth_mib < FLAT_MIB, f"{memory.growth_mib:.1f} MiB more over the cap"


def test_a_trickling_client_is_cut_off_at_the_time_limit_and_still_reads_the_401(
    tight: Service,
) -> None:
    # 200 KB (under the cap) at 20 KB per 0.25 s would take 2.5 s; the drain stops at 1 s.
    answer = slow_upload(tight, 200_000, None, piece=20_000, pause_s=0.25)
    assert (answer.status, answer.error["code"]) == (401, "unauthorized"), answer
    assert answer.send_failed and answer.sent < 200_000
    assert answer.seconds < 2.5


def test_a_body_read_to_the_end_keeps_the_connection(roomy: Service) -> None:
    with httpx.Client(base_url=roomy.url) as client:
        answer = client.post(
            "/v1/batches",
            content=b"{broken",
            headers={"Authorization": f"Bearer {roomy.keys['edge']}"},
        )
        assert answer.status_code == 422 and "connection" not in answer.headers


# --- Expect: 100-continue -----------------------------------------------------------------


def test_a_client_that_asks_gets_the_refusal_before_it_sends_the_body(
    roomy: Service, tight: Service
) -> None:
    cases = [
        (roomy, None, 401),
        (roomy, roomy.keys["vet"], 403),
        (roomy, roomy.keys["revoked"], 401),
        (tight, tight.keys["edge"], 413),
    ]
    for service, key, status in cases:
        for size in SIZES:
            answer = slow_upload(service, size, key, expect=True)
            assert answer.status == status, answer
            assert not answer.continued and answer.sent == 0 and answer.closed
    continued = slow_upload(roomy, 1 * MB, roomy.keys["edge"], expect=True, pause_s=0)
    assert continued.continued and continued.sent == 1 * MB
    assert continued.status == 422  # read (the body is not a batch) only after 100 Continue


# --- herdrecord push ----------------------------------------------------------------------


class CountingRelay:
    """A TCP relay to the service that counts the bytes the client sends through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, dest: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted:
                    with self._lock:
                        self.sent += len(data)
                dest.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()


def _edge_outbox(folder: Path, sizes: list[int]) -> Path:
    """Return an edge record whose outbox holds one committed upload of each size."""
    path = folder / "edge"
    create_record(str(path), Settings())
    journal = Journal(path / JOURNAL_FILE, outbox=True)
    for i, size in enumerate(sizes):
        head = json.dumps({"batch_id": f"dev-x/{i:03d}", "pad": ""}).encode()
        body = head[:-2] + b"x" * max(0, size - len(head)) + head[-2:]
        [entry_id] = journal.add([Received("test", "application/json", "", body)])
        journal.settle([(entry_id, [BatchOutcome("test", f"dev-x/{i:03d}", "accepted")])])
    journal.close()
    return path


def test_push_with_a_revoked_key_stops_at_the_first_refusal_in_one_line(
    tmp_path: Path, roomy: Service
) -> None:
    edge = _edge_outbox(tmp_path, [10 * MB, 2_000, 2_000])
    relay = CountingRelay(roomy.address)
    refused = roomy.answers(401)
    try:
        started = time.monotonic()
        result = runner.invoke(
            app, ["push", str(edge), "--to", relay.url, "--key", roomy.keys["revoked"]]
        )
        seconds = time.monotonic() - started
    finally:
        relay.close()
    assert result.exit_code == 2, result.output  # an error a person fixes (the key)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "401" in lines[0] and "unknown or revoked" in lines[0] and "role edge" in lines[0]
    assert roomy.answers(401) == refused + 1  # one try: a refusal is not retried
    assert relay.sent < 2_000, f"{relay.sent} bytes sent: more than the request head"
    assert seconds < 10
    journal = Journal(edge / JOURNAL_FILE, outbox=True)
    assert len(journal.waiting()) == 3  # all still waiting for a valid key
    journal.close()


def test_push_sends_no_body_the_central_refuses_as_too_large(
    tmp_path: Path, tight: Service
) -> None:
    edge = _edge_outbox(tmp_path, [1 * MB, 10 * MB])
    relay = CountingRelay(tight.address)
    journal = Journal(edge / JOURNAL_FILE, outbox=True)
    try:
        report = push_outbox(journal, relay.url, tight.keys["edge"], PushPolicy(attempts=2))
    finally:
        relay.close()
    assert [(o.status, o.http_status) for o in report.outcomes] == [("refused", 413)] * 2
    assert "HERDRECORD_API_MAX_BODY_BYTES" in report.outcomes[0].message
    assert relay.sent < 4_000  # two request heads, no body
    assert [e.push for e in journal.entries()] == ["refused", "refused"]
    journal.close()


# --- push against answers cut short -------------------------------------------------------


class CutShort:
    """A server that reads a request head, answers with `reply` (bytes), and closes at
    once, the body unread (so the client's kernel gets a reset)."""

    def __init__(self, reply: Callable[[int], bytes]) -> None:
        self.reply = reply
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with sock:
                head = b""
                while b"\r\n\r\n" not in head and (data := sock.recv(4096)):
                    head += data
                self.requests += 1
                sock.sendall(self.reply(self.requests))

    def close(self) -> None:
        self._listener.close()


def _journal(tmp_path: Path, sizes: list[int]) -> Journal:
    journal = Journal(tmp_path / JOURNAL_FILE, outbox=True)
    for i, size in enumerate(sizes):
        [entry_id] = journal.add([Received("test", "application/json", "", b"{" * size)])
        journal.settle([(entry_id, [BatchOutcome("test", f"b{i}", "accepted")])])
    return journal


def _no_sleep() -> PushClock:
    return PushClock(sleep=lambda s: None)


@pytest.mark.parametrize("size", [1_000, 1 * MB], ids=["small", "large"])
def test_push_takes_a_status_line_cut_short_as_the_refusal(tmp_path: Path, size: int) -> None:
    server = CutShort(lambda n: b"HTTP/1.1 401 Unauthorized\r\n")
    journal = _journal(tmp_path, [size, size])
    try:
        with pytest.raises(PushFailed, match=r"\(401: Unauthorized\); give a valid key"):
            push_outbox(journal, server.url, "k", PushPolicy(attempts=5), clock=_no_sleep())
    finally:
        server.close()
    assert server.requests == 1
    journal.close()


def test_push_marks_a_413_cut_short_refused_and_goes_on(tmp_path: Path) -> None:
    def reply(n: int) -> bytes:
        if n == 1:  # the head says 500 bytes follow; 11 do
            return b'HTTP/1.1 413 Content Too Large\r\ncontent-length: 500\r\n\r\n{"error": {'
        body = b'{"batches": [{"status": "accepted"}]}'
        return b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    server = CutShort(reply)
    journal = _journal(tmp_path, [1 * MB, 1_000])
    try:
        report = push_outbox(journal, server.url, "k", PushPolicy(attempts=5), clock=_no_sleep())
    finally:
        server.close()
    assert [(o.status, o.http_status) for o in report.outcomes] == [
        ("refused", 413),
        ("pushed", 201),
    ]
    assert server.requests == 2
    journal.close()


def test_push_retries_a_connection_closed_before_any_answer(tmp_path: Path) -> None:
    server = CutShort(
        lambda n: b"" if n < 3 else b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"
    )
    journal = _journal(tmp_path, [1 * MB])
    retries: list[Any] = []
    try:
        report = push_outbox(
            journal,
            server.url,
            "k",
            PushPolicy(attempts=5),
            on_retry=retries.append,
            clock=_no_sleep(),
        )
    finally:
        server.close()
    assert (report.count("pushed"), server.requests) == (1, 3)
    assert [r.attempt for r in retries] == [1, 2]
    assert all("cannot reach" in r.reason for r in retries)
    journal.close()


def test_push_replaces_a_kept_connection_the_server_closed(tmp_path: Path) -> None:
    body = b'{"batches": [{"status": "accepted"}]}'
    stored = b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    server = CutShort(lambda n: stored)  # keep-alive by its head, closed right after
    journal = _journal(tmp_path, [1_000, 1_000, 1 * MB])
    retries: list[Any] = []
    try:
        report = push_outbox(
            journal, server.url, "k", PushPolicy(), on_retry=retries.append, clock=_no_sleep()
        )
    finally:
        server.close()
    assert (report.count("pushed"), server.requests, retries) == (3, 3, [])
    journal.close()
