"""The HTTP/1.1 transport `herdrecord push` uploads with: it asks before it sends the body.

An upload of EXPECT_FROM_BYTES or more goes with `Expect: 100-continue`, and its body goes
only after the service's `100 Continue`, or after CONTINUE_WAIT_S without an answer (a
server or proxy that ignores the expectation; this transport then stops asking). A final
answer that comes instead, or while the body is going out, is the answer, and no more of
the body is sent: a refused key costs the request head, not the upload. An answer whose
status line arrived is returned even when the connection closes or resets before the
answer ends, since the status is what push acts on; only a failure before any status is an
`httpx.TransportError` (what push retries). One connection is kept between requests; a
kept one the server has closed meanwhile is replaced once, at no retry's cost.

Smaller bodies go without asking: they fit in the socket's send buffer, so they are out
before any answer could come back, and waiting for `100 Continue` would cost every upload
a round trip. httpx's own transports cannot wait for `100 Continue` (they send the body
at once), hence this one, on h11 (the HTTP/1.1 state machine httpx itself is built on).
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import urllib.request
from dataclasses import dataclass, field

import h11
import httpx

EXPECT_FROM_BYTES = 64 * 1024
CONTINUE_WAIT_S = 1.0  # as curl waits
PIECE_BYTES = 64 * 1024
HEAD_LIMIT_BYTES = 64 * 1024  # of an answer's head kept for its status line
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])[ \r]")
# Request headers this transport sets itself (the length, the expectation) or cannot honour.
OWN_HEADERS = frozenset({b"content-length", b"expect", b"transfer-encoding"})


class _Stale(Exception):
    """A kept connection that the server closed before it answered anything."""


@dataclass
class _Connection:
    """One socket to the server and the HTTP/1.1 state of its current exchange."""

    origin: tuple[str, str, int]
    sock: socket.socket
    http: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    head: bytearray = field(default_factory=bytearray)  # what came back before a full answer
    reused: bool = False
    waited: bool = False  # asked to continue and had no answer in time
    continued: bool = False  # a 100 Continue came

    def close(self) -> None:
        self.sock.close()


class AskFirstTransport(httpx.BaseTransport):
    """Send requests over HTTP/1.1, asking `Expect: 100-continue` before a large body."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        continue_wait_s: float = CONTINUE_WAIT_S,
        expect_from_bytes: int = EXPECT_FROM_BYTES,
    ) -> None:
        self.ssl_context = ssl_context
        self.continue_wait_s = continue_wait_s
        self.expect_from_bytes = expect_from_bytes
        self.asks = True  # until a server is seen to ignore the expectation
        self._kept: _Connection | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request and return its answer (see the module's docstring)."""
        timeouts = request.extensions.get("timeout", {})
        origin = (request.url.scheme, request.url.host, request.url.port or _port(request))
        body = request.read()
        kept, self._kept = self._kept, None
        if kept is not None and kept.origin == origin:
            try:
                return self._exchange(kept, request, body, timeouts)
            except _Stale:
                pass
        elif kept is not None:
            kept.close()
        return self._exchange(self._open(origin, timeouts), request, body, timeouts)

    def close(self) -> None:
        """Close the kept connection."""
        if self._kept is not None:
            self._kept.close()
            self._kept = None

    def _open(self, origin: tuple[str, str, int], timeouts: dict[str, float]) -> _Connection:
        scheme, host, port = origin
        try:
            sock = socket.create_connection((host, port), timeout=timeouts.get("connect"))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                self.ssl_context = self.ssl_context or httpx.create_ssl_context()
                sock = self.ssl_context.wrap_socket(sock, server_hostname=host)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port}: {exc}") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connecting to {host}:{port}: {exc}") from exc
        return _Connection(origin, sock)

    def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float],
    ) -> httpx.Response:
        """Send the request on `connection` and read the answer; keep the connection when
        both sides may go on; raise _Stale when a kept one turns out closed."""
        ask = self.asks and len(body) >= self.expect_from_bytes
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in OWN_HEADERS]
        headers.append((b"content-length", str(len(body)).encode()))
        if ask:
            headers.append((b"expect", b"100-continue"))
        head = h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
        answer: h11.Response | httpx.Response | None
        try:
            try:
                _write(connection, connection.http.send(head) or b"", timeouts)
                answer = self._continue(connection, timeouts) if ask else None
                if answer is None:
                    answer = _send_body(connection, body, timeouts)
            except OSError:
                answer = None  # it stopped reading: its answer may be waiting, read it
            if answer is None:
                answer = _next_answer(connection, timeouts)
        except (OSError, h11.RemoteProtocolError) as exc:
            connection.close()  # broken: never kept
            if connection.reused and not connection.head:
                raise _Stale() from exc
            answer = _status_only(connection, request, exc)
        except BaseException:
            connection.close()
            raise
        try:
            response = _read_answer(connection, answer, request, timeouts)
        except BaseException:
            connection.close()
            raise
        if connection.waited and not connection.continued and connection.http.our_state is h11.DONE:
            self.asks = False  # it took the whole body untold: later bodies go at once
        self._keep(connection)
        return response

    def _continue(self, connection: _Connection, timeouts: dict[str, float]) -> h11.Response | None:
        """Wait for `100 Continue`; return a final answer that comes instead, else None."""
        wait_s = min(self.continue_wait_s, timeouts.get("read") or self.continue_wait_s)
        event = _next_event(connection, wait_s, timeouts)
        if event is None:
            connection.waited = True  # in vain so far: send the body anyway
            return None
        if isinstance(event, h11.Response):
            return event
        return None  # 100 Continue

    def _keep(self, connection: _Connection) -> None:
        http = connection.http
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
            connection.head.clear()
            connection.reused, connection.waited, connection.continued = True, False, False
            self._kept = connection
        else:
            connection.close()


def _port(request: httpx.Request) -> int:
    return 443 if request.url.scheme == "https" else 80


def ask_first_transport(url: str) -> AskFirstTransport | None:
    """Return the transport for pushing to `url`, or None when the environment names a
    proxy for it (then httpx's own transport, which goes through the proxy but does not
    wait for `100 Continue`)."""
    parsed = httpx.URL(url)
    proxies = urllib.request.getproxies()
    if (parsed.scheme in proxies or "all" in proxies) and not urllib.request.proxy_bypass(
        parsed.host
    ):
        return None
    return AskFirstTransport()


def _write(connection: _Connection, data: bytes, timeouts: dict[str, float]) -> None:
    connection.sock.settimeout(timeouts.get("write"))
    try:
        connection.sock.sendall(data)
    except TimeoutError as exc:
        raise httpx.WriteTimeout(f"sending the request: {exc}") from exc


def _send_body(
    connection: _Connection, body: bytes, timeouts: dict[str, float]
) -> h11.Response | None:
    """Send the body in pieces, watching for an answer meanwhile; return an answer that
    came before the body was all out (the rest is not sent), else None."""
    sock, view, sent = connection.sock, memoryview(body), 0
    write_s = timeouts.get("write")
    while sent < len(body):
        readable, writable, _ = select.select([sock], [sock], [], write_s)
        if readable or _pending(sock):
            event = _next_event(connection, 0.0, timeouts)
            if isinstance(event, h11.Response):
                return event
            continue
        if not writable:
            raise httpx.WriteTimeout(f"sending the body: nothing sent for {write_s} s")
        sock.settimeout(write_s)
        try:
            sent += sock.send(view[sent : sent + PIECE_BYTES])
        except TimeoutError:
            raise httpx.WriteTimeout(f"sending the body: nothing sent for {write_s} s") from None
    # The body went out in pieces written directly; tell h11 it was sent (its bytes are
    # the body itself with Content-Length framing), so the connection can be kept.
    if body:
        connection.http.send(h11.Data(data=body))
    connection.http.send(h11.EndOfMessage())
    return None


def _pending(sock: socket.socket) -> bool:
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _next_event(
    connection: _Connection, wait_s: float | None, timeouts: dict[str, float]
) -> h11.Response | h11.InformationalResponse | None:
    """Return the next answer head (a 1xx or a final one) within `wait_s` (None: the read
    timeout), or None when none came in time."""
    http = connection.http
    while True:
        event = http.next_event()
        if isinstance(event, h11.InformationalResponse):
            connection.continued = connection.continued or event.status_code == 100
            return event
        if isinstance(event, h11.Response):
            return event
        if event is not h11.NEED_DATA:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before an answer")
        connection.sock.settimeout(timeouts.get("read") if wait_s is None else wait_s)
        try:
            data = connection.sock.recv(PIECE_BYTES)
        except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
            if wait_s is None:
                raise httpx.ReadTimeout("waiting for the answer") from None
            return None
        if len(connection.head) < HEAD_LIMIT_BYTES:
            connection.head += data
        http.receive_data(data)
        if not data and wait_s is not None:
            raise ConnectionResetError("the server closed the connection")


def _next_answer(connection: _Connection, timeouts: dict[str, float]) -> h11.Response:
    """Return the final answer's head, passing over 1xx answers."""
    while True:
        event = _next_event(connection, None, timeouts)
        if isinstance(event, h11.Response):
            return event


def _status_only(connection: _Connection, request: httpx.Request, exc: Exception) -> httpx.Response:
    """Return the answer whose status line came before the connection failed, or raise the
    failure as push's kind of connection error."""
    found = STATUS_LINE.match(bytes(connection.head))
    if found is None:
        raise httpx.ReadError(f"no answer: {exc}", request=request) from exc
    return httpx.Response(int(found.group(1)), request=request)


def _read_answer(
    connection: _Connection,
    answer: h11.Response | httpx.Response,
    request: httpx.Request,
    timeouts: dict[str, float],
) -> httpx.Response:
    """Read the answer's body; return the answer, cut short where the connection ended."""
    if isinstance(answer, httpx.Response):
        return answer
    chunks: list[bytes] = []
    whole = True
    http = connection.http
    connection.sock.settimeout(timeouts.get("read"))
    try:
        while True:
            event = http.next_event()
            if isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif event is h11.NEED_DATA:
                http.receive_data(connection.sock.recv(PIECE_BYTES))
            else:
                break  # ConnectionClosed or PAUSED: nothing more of this answer
    except TimeoutError:
        raise httpx.ReadTimeout("reading the answer", request=request) from None
    except (OSError, h11.RemoteProtocolError):
        whole = False
    headers = [(k, v) for k, v in answer.headers]
    if not whole:  # a cut body cannot be decoded or measured: give it as it came
        headers = [(k, v) for k, v in headers if k not in (b"content-length", b"content-encoding")]
    return httpx.Response(
        answer.status_code,
        headers=headers,
        stream=httpx.ByteStream(b"".join(chunks)),
        request=request,
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(answer.reason)},
    )
