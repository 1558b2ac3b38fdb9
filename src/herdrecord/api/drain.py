"""Answers that come before the body: the client must be able to read them.

A route may answer before it has read the request body: a missing or wrong key (401, 403),
a body that says it is too large (413). If the service then closed the connection while
the client was still sending, the client's kernel would get a reset, and many clients
(Python's urllib, a loaded edge box) report a broken pipe instead of the answer. So this
ASGI middleware, when the app answers a request whose body it has not read to the end:

- sends the whole answer at once, with `Connection: close` (the connection is not reused);
- then reads and discards the rest of the body, never parsing it, until it ends, the
  request has passed the body cap (`HERDRECORD_API_MAX_BODY_BYTES`, counting what the
  route read) or `HERDRECORD_API_REFUSAL_DRAIN_S` have passed, and only then closes;
- closes at once when the client asked `Expect: 100-continue` and was never told to
  continue (it has not sent the body and will not), or when the body's declared length is
  past the cap.

Memory stays flat: uvicorn hands the body over in pieces of at most ~64 KiB and reads the
socket only as they are taken, and each piece is dropped as it comes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class _Body:
    """How far the request body has been read, by the app and then by the drain."""

    declared: int | None  # Content-Length, or None (chunked)
    expects_continue: bool
    received: int = 0  # bytes handed over so far
    asked: bool = False  # the app asked for the body (so the server sent 100 Continue)
    ended: bool = False  # the body ended, or the client went away


class DrainUnreadBody:
    """Let an answer that comes before the request body is read reach the client intact."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, drain_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.drain_s = drain_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _body_of(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return

        async def receive_counted() -> Message:
            body.asked = True
            message = await receive()
            _count(body, message)
            return message

        async def send_then_drain(message: Message) -> None:
            if body.ended:
                await send(message)
            elif message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                await send({**message, "headers": [*headers, (b"connection", b"close")]})
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # The whole answer goes out now; the response ends (and the server closes
                # the connection) only after the drain.
                await send({**message, "more_body": True})
                await self._drain(receive, body)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive_counted, send_then_drain)

    async def _drain(self, receive: Receive, body: _Body) -> None:
        """Read and drop the rest of the body, within the cap and the time limit."""
        if body.expects_continue and not body.asked:
            return  # told nothing, the client waits: it sends no body
        if body.declared is not None and body.declared > self.max_body_bytes:
            return  # it would pass the cap: close now rather than read to no end
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        while not body.ended and body.received <= self.max_body_bytes:
            left_s = deadline - loop.time()
            if left_s <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), left_s)
            except TimeoutError:
                return
            _count(body, message)


def _body_of(scope: Scope) -> _Body | None:
    """Return the body's bookkeeping, or None when the request has no body."""
    headers = dict(scope.get("headers", []))
    length = headers.get(b"content-length", b"").strip()
    chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
    if not chunked and (not length.isdigit() or int(length) == 0):
        return None
    expects = headers.get(b"expect", b"").strip().lower() == b"100-continue"
    return _Body(None if chunked else int(length), expects)


def _count(body: _Body, message: Message) -> None:
    if message["type"] == "http.request":
        body.received += len(message.get("body", b""))
        body.ended = not message.get("more_body", False)
    else:  # http.disconnect
        body.ended = True
