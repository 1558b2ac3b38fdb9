"""The service's guard before the body: who is calling, how large, how slow; and answers
that come before the body, which the client must be able to read.

Before a request's body is read at all:

- a request to the API (`/v1/...`) without a known, unrevoked key is answered 401 at once
  (the route never runs, so no body is read or parsed for a stranger);
- a body is capped by its route: batch uploads (`POST /v1/batches`) at
  `HERDRECORD_API_MAX_BODY_BYTES`, every other route at
  `HERDRECORD_API_MAX_SMALL_BODY_BYTES`: a declared length past the cap is answered 413 at
  once, and a body that grows past it (chunked) is refused 413 as it passes;
- the whole body must arrive within `HERDRECORD_API_BODY_TIMEOUT_S`, else 408 and the
  connection is closed (a client sending a byte every few seconds holds nothing for long).

A route may answer before it has read the request body: a missing or wrong key (401, 403),
a body that says it is too large (413). If the service then closed the connection while
the client was still sending, the client's kernel would get a reset, and many clients
(Python's urllib, a loaded edge box) report a broken pipe instead of the answer. So this
ASGI middleware, when the app answers a request whose body it has not read to the end:

- sends the whole answer at once, with `Connection: close` (the connection is not reused);
- then reads and discards the rest of the body, never parsing it, until it ends, the
  request has passed its route's body cap (counting what the route read) or
  `HERDRECORD_API_REFUSAL_DRAIN_S` have passed, and only then closes;
- closes at once when the client asked `Expect: 100-continue` and was never told to
  continue (it has not sent the body and will not), when the body's declared length is
  past the cap, or when the body was too slow.

Memory stays flat: uvicorn hands the body over in pieces of at most ~64 KiB and reads the
socket only as they are taken, and each piece is dropped as it comes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herdrecord.api.deps import authenticate
from herdrecord.api.problems import ApiError, error_response

UPLOAD_PATHS = ("/v1/batches",)  # the routes that take large bodies
KEYED_PREFIX = "/v1/"  # every route under it needs a key


@dataclass
class _Body:
    """How far the request body has been read, by the app and then by the drain."""

    declared: int | None  # Content-Length, or None (chunked)
    expects_continue: bool
    cap: int = 0  # the route's body cap
    received: int = 0  # bytes handed over so far
    asked: bool = False  # the app asked for the body (so the server sent 100 Continue)
    ended: bool = False  # the body ended, or the client went away
    too_slow: bool = False  # the body did not arrive within the body timeout


class BodyRefused(HTTPException):
    """The body passed its cap or its time limit while the route read it."""


class DrainUnreadBody:
    """Refuse strangers, oversize and slow bodies before reading them; let an answer that
    comes before the request body is read reach the client intact."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        drain_s: float,
        max_small_body_bytes: int | None = None,
        body_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_small_body_bytes = max_small_body_bytes or max_body_bytes
        self.drain_s = drain_s
        self.body_timeout_s = body_timeout_s

    def cap_of(self, path: str) -> int:
        """Return the largest body the route of `path` takes."""
        return self.max_body_bytes if path in UPLOAD_PATHS else self.max_small_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(scope)
        body = _body_of(scope)
        if body is None:
            if refusal is not None:
                await refusal(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        body.cap = self.cap_of(scope.get("path", ""))
        if refusal is None and body.declared is not None and body.declared > body.cap:
            refusal = _too_large(body.cap, scope.get("path", ""))
        loop = asyncio.get_running_loop()
        deadline = None if self.body_timeout_s is None else loop.time() + self.body_timeout_s

        async def receive_counted() -> Message:
            if body.ended:
                return await receive()  # e.g. a streaming answer waiting for a disconnect
            body.asked = True
            left_s = None if deadline is None else deadline - loop.time()
            try:
                if left_s is not None and left_s <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), left_s)
            except TimeoutError:
                body.too_slow = True
                raise BodyRefused(
                    408, f"the body did not arrive within {self.body_timeout_s:g} s"
                ) from None
            _count(body, message)
            if body.received > body.cap:
                raise BodyRefused(413, _too_large_message(body.cap, scope.get("path", "")))
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

        if refusal is not None:
            await refusal(scope, receive_counted, send_then_drain)
        else:
            await self.app(scope, receive_counted, send_then_drain)

    async def _refusal(self, scope: Scope) -> ASGIApp | None:
        """Return a 401 answer for an API request without a valid key, else None."""
        if not scope.get("path", "").startswith(KEYED_PREFIX):
            return None
        app = scope.get("app")
        keys = getattr(getattr(app, "state", None), "keys", None)
        if keys is None:
            return None  # not started (the route's own check still runs)
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        try:
            await asyncio.to_thread(authenticate, keys, authorization)
        except ApiError as refused:
            return error_response(
                refused.status, refused.message, refused.code, headers=refused.headers
            )
        return None

    async def _drain(self, receive: Receive, body: _Body) -> None:
        """Read and drop the rest of the body, within the cap and the time limit."""
        if body.expects_continue and not body.asked:
            return  # told nothing, the client waits: it sends no body
        if body.too_slow:
            return  # it has had its time
        if body.declared is not None and body.declared > body.cap:
            return  # it would pass the cap: close now rather than read to no end
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        while not body.ended and body.received <= body.cap:
            left_s = deadline - loop.time()
            if left_s <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), left_s)
            except TimeoutError:
                return
            _count(body, message)


def _too_large_message(cap: int, path: str) -> str:
    setting = (
        "HERDRECORD_API_MAX_BODY_BYTES"
        if path in UPLOAD_PATHS
        else "HERDRECORD_API_MAX_SMALL_BODY_BYTES"
    )
    advice = "; split it into smaller batches" if path in UPLOAD_PATHS else ""
    return f"the body is larger than the limit of {cap} bytes ({setting}){advice}"


def _too_large(cap: int, path: str) -> ASGIApp:
    return error_response(413, _too_large_message(cap, path))


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
