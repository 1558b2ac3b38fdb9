"""Push: deliver the edge's outbox (committed journal entries) to a central service, in order.

Each entry goes as received to the central `POST /v1/batches`. The central record is
idempotent by batch_id, so a push that is repeated, or killed after the central stored an
upload but before the entry was marked, stores nothing twice: the upload sent again is a
duplicate there. Connection failures, 5xx and 429 are retried with exponential backoff
and jitter (a Retry-After is honoured), within a number of tries per upload and one
deadline per run; entries are sent strictly in order, so the run stops at an upload it
cannot deliver. A refusal of one upload (409, 413, 415, 422) marks that entry refused with
the server's message and is not retried; a refused key (401, 403) or a wrong address stops
the run at once. Uploads go through `AskFirstTransport`: a large one asks
`Expect: 100-continue`, so a refusal costs the request head, not the body, and a refusal
counts whenever its status line arrived, even if the connection then closed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from herdrecord._version import __version__
from herdrecord.config import Settings
from herdrecord.errors import PushFailed
from herdrecord.ingest.group_commit import content_type_of
from herdrecord.ingest.journal import Journal, JournalEntry
from herdrecord.ingest.push_transport import ask_first_transport

MAX_BACKOFF_S = 60.0
REFUSED = frozenset({409, 413, 415, 422})  # this upload, not the push, is refused


@dataclass(frozen=True)
class PushPolicy:
    """How hard one push tries: per upload, for the whole run, and per request."""

    attempts: int = 8
    deadline_s: float = 600.0
    backoff_s: float = 1.0
    timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PushPolicy:
        """Return the policy the settings ask for."""
        return cls(
            settings.push_attempts,
            settings.push_deadline_s,
            settings.push_backoff_s,
            settings.push_timeout_s,
        )


@dataclass(frozen=True)
class Pushed:
    """What the central service did with one journalled upload."""

    entry_id: int
    source: str
    batch_ids: tuple[str, ...]
    status: Literal["pushed", "refused"]
    http_status: int
    message: str
    accepted: int = 0  # batches the central stored now
    duplicate: int = 0  # batches it already had


@dataclass(frozen=True)
class Retry:
    """A failed try that will be made again after `wait_s`."""

    entry_id: int
    attempt: int
    wait_s: float
    reason: str


@dataclass(frozen=True)
class PushReport:
    """The outcome of one push run."""

    outcomes: tuple[Pushed, ...]
    left: int  # uploads still waiting to be pushed
    stopped: str | None  # why the run ended with uploads left, or None
    seconds: float

    def count(self, status: Literal["pushed", "refused"]) -> int:
        """Return how many uploads ended with `status`."""
        return sum(1 for outcome in self.outcomes if outcome.status == status)


@dataclass
class PushClock:
    """Time and randomness, replaceable in tests (the edge of the world)."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    random: Callable[[], float] = random.random


def push_outbox(
    journal: Journal,
    url: str,
    key: str,
    policy: PushPolicy,
    *,
    refused_too: bool = False,
    on_pushed: Callable[[Pushed], None] | None = None,
    on_retry: Callable[[Retry], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    clock: PushClock | None = None,
) -> PushReport:
    """Send every committed, unpushed upload to the central service at `url`, oldest first;
    mark each pushed or refused; stop at the first one that cannot be delivered in time."""
    clock = clock or PushClock()
    started = clock.monotonic()
    deadline = started + policy.deadline_s
    endpoint = batches_url(url)
    entries = journal.waiting(refused_too)
    outcomes: list[Pushed] = []
    stopped = None
    headers = {"Authorization": f"Bearer {key}", "User-Agent": f"herdrecord/{__version__} push"}
    transport = transport or ask_first_transport(endpoint)
    with httpx.Client(timeout=policy.timeout_s, transport=transport, headers=headers) as client:
        for done, entry in enumerate(entries):
            sent = _send(client, endpoint, journal, entry, policy, deadline, clock, on_retry)
            if isinstance(sent, str):
                stopped = f"{sent}; {len(entries) - done} uploads wait for the next push"
                break
            if sent.status == "pushed":
                journal.mark_pushed(entry.entry_id)
            else:
                journal.mark_refused(entry.entry_id, sent.message)
            outcomes.append(sent)
            if on_pushed is not None:
                on_pushed(sent)
    journal.release()
    return PushReport(tuple(outcomes), len(journal.waiting()), stopped, clock.monotonic() - started)


def batches_url(url: str) -> str:
    """Return the upload endpoint of the service at `url` (its base address or the endpoint)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1/batches") else f"{url}/v1/batches"


def _send(
    client: httpx.Client,
    endpoint: str,
    journal: Journal,
    entry: JournalEntry,
    policy: PushPolicy,
    deadline: float,
    clock: PushClock,
    on_retry: Callable[[Retry], None] | None,
) -> Pushed | str:
    """Deliver one entry, retrying what can pass; return its outcome, or why it could not."""
    body = journal.body(entry.entry_id)
    headers = {"Content-Type": entry.content_type or content_type_of(body)}
    if entry.content_encoding:
        headers["Content-Encoding"] = entry.content_encoding
    for attempt in range(1, policy.attempts + 1):
        retry_after: float | None = None
        try:
            response = client.post(endpoint, content=body, headers=headers)
        except httpx.TransportError as exc:
            reason = f"cannot reach {endpoint} ({type(exc).__name__}: {exc})"
        else:
            if response.status_code in (200, 201):
                return _pushed(entry, response)
            if response.status_code in REFUSED:
                return _refused(entry, response)
            if not _retried(response.status_code):
                raise _failed(endpoint, response)
            reason = f"{endpoint} answered {response.status_code} ({_message(response)})"
            retry_after = _retry_after(response.headers.get("Retry-After"))
        if attempt == policy.attempts:
            return f"gave up after {attempt} tries: {reason}"
        ceiling = min(MAX_BACKOFF_S, policy.backoff_s * 2 ** (attempt - 1))
        wait = ceiling / 2 + clock.random() * ceiling / 2  # "equal jitter": never zero
        if retry_after is not None:
            wait = retry_after
        if clock.monotonic() + wait > deadline:
            return f"stopped at the deadline ({policy.deadline_s:.0f} s): {reason}"
        if on_retry is not None:
            on_retry(Retry(entry.entry_id, attempt, wait, reason))
        clock.sleep(wait)
    raise AssertionError("unreachable: the last attempt returns")


def _retried(status: int) -> bool:
    """Return whether an answer of `status` may pass when tried again (overload, a fault)."""
    return status == 429 or status >= 500


def _pushed(entry: JournalEntry, response: httpx.Response) -> Pushed:
    statuses = [b.get("status") for b in _json(response).get("batches", [])]
    return Pushed(
        entry.entry_id,
        entry.source,
        entry.batch_ids,
        "pushed",
        response.status_code,
        "stored" if response.status_code == 201 else "already stored",
        accepted=statuses.count("accepted"),
        duplicate=statuses.count("duplicate"),
    )


def _refused(entry: JournalEntry, response: httpx.Response) -> Pushed:
    return Pushed(
        entry.entry_id,
        entry.source,
        entry.batch_ids,
        "refused",
        response.status_code,
        _message(response, problems=3),
    )


def _failed(endpoint: str, response: httpx.Response) -> PushFailed:
    status = response.status_code
    if status in (401, 403):
        hint = "give a valid key of role edge with --key or HERDRECORD_PUSH_KEY"
    else:
        hint = "is --to the address of a herdrecord service?"
    return PushFailed(endpoint, status, _message(response), hint)


def _message(response: httpx.Response, problems: int = 0) -> str:
    """Return the error message of a herdrecord answer (with its first problems), or text."""
    error = _json(response).get("error")
    if not isinstance(error, dict):
        return response.text[:200].strip() or response.reason_phrase
    listed = [str(p) for p in error.get("problems", [])][:problems]
    return "; ".join([str(error.get("message", "")), *listed]).strip("; ")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks for (delay seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
