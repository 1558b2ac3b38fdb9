"""The service's one writer: every write runs on one thread, in arrival order.

Reads never wait for it (Lance readers see the last committed version). Uploads that queue
up while a write runs are committed together, each upload still all-or-nothing, so many small
edge uploads make few Lance versions (group commit). Linking runs on the same thread once the
uploads pause (or at the latest `api_link_max_delay_s` after the first unlinked upload).
With an intake journal, each group's bytes are journalled before its commit and cleared once
a sync, at most `journal_sync_s` after the first unsynced commit, has made the record durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from herdrecord.api.problems import ApiError
from herdrecord.ingest.group_commit import commit_uploads
from herdrecord.ingest.ingestor import BatchOutcome, Ingestor
from herdrecord.ingest.journal import Journal, Received
from herdrecord.ingest.replay import commit_journalled
from herdrecord.ingest.sources import Candidate
from herdrecord.linking.run import LinkReport, link_pending
from herdrecord.store.compaction import compact_if_fragmented
from herdrecord.store.record import Record

log = logging.getLogger("herdrecord.api")
T = TypeVar("T")
COMPACT_CHECK_EVERY = 16


@dataclass
class _Upload:
    candidates: Sequence[Candidate]
    received: Received | None  # its bytes, for the journal
    future: asyncio.Future[list[BatchOutcome]]


@dataclass
class _Job:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]


class _Stop:
    """Put last on the queue by `close`: the writer stops once it reaches it."""


@dataclass
class WriterStats:
    """What the writer has done since the service started."""

    uploads: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    commits: int = 0
    links: int = 0
    last_link: LinkReport | None = None
    last_link_error: str | None = None
    queued: int = 0
    syncs: int = 0
    unlinked_since: float | None = field(default=None, repr=False)
    unsynced_since: float | None = field(default=None, repr=False)


class Writer:
    """Runs the record's writes one at a time on its own thread; use `start` and `close`."""

    def __init__(self, record: Record, journal: Journal | None = None) -> None:
        self.record = record
        self.journal = journal
        self.stats = WriterStats()
        self._queue: asyncio.Queue[_Upload | _Job | _Stop] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="herdrecord-writer")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._held: _Upload | _Job | _Stop | None = None
        self._since_compact_check = 0
        self._ingestor: list[Ingestor] = []  # the last commit's, while the ledger is unchanged

    def start(self, link_pending_now: bool = True) -> None:
        """Start the writer task (linking whatever an earlier run left unlinked, when idle)."""
        if link_pending_now:
            self.stats.unlinked_since = time.monotonic()
        self._task = asyncio.create_task(self._loop(), name="herdrecord-writer")

    async def close(self) -> None:
        """Refuse new writes, finish every queued one, then stop."""
        self._closing = True
        if self._task is not None:
            await self._queue.put(_Stop())
            await self._task
            if self._since_compact_check:
                await self._compact()
            if self.stats.unsynced_since is not None:
                await self._sync()
        self._executor.shutdown(wait=True)

    async def upload(
        self, candidates: Sequence[Candidate], received: Received | None = None
    ) -> list[BatchOutcome]:
        """Commit one upload's batches (all or none), its bytes `received` journalled first;
        return each batch's outcome."""
        future: asyncio.Future[list[BatchOutcome]] = asyncio.get_running_loop().create_future()
        await self._put(_Upload(candidates, received, future))
        return await future

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a write on the writer thread after those queued before it; return its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._put(_Job(fn, future))
        return await future

    async def link_now(self) -> LinkReport:
        """Link every unlinked tracklet now (after the writes queued before)."""
        report = await self.run(lambda: link_pending(self.record))
        self._linked(report)
        return report

    async def _put(self, item: _Upload | _Job) -> None:
        if self._closing or self._task is None or self._task.done():
            raise ApiError(
                503,
                "the service is shutting down; send it again later",
                "shutting_down",
                headers={"Retry-After": "5"},
            )
        self.stats.queued += 1
        await self._queue.put(item)

    async def _loop(self) -> None:
        while True:
            item = self._held if self._held is not None else await self._next()
            self._held = None
            if isinstance(item, _Stop):
                return
            if isinstance(item, _Job):
                await self._job(item)
                continue
            uploads = [item]
            while not self._queue.empty():  # group the uploads waiting behind this one
                more = self._queue.get_nowait()
                if not isinstance(more, _Upload):
                    self._held = more  # a job, or the stop: after this group, in order
                    break
                uploads.append(more)
            await self._commit(uploads)

    async def _next(self) -> _Upload | _Job | _Stop:
        """Wait for the next write; link when the uploads pause or linking is overdue, and
        sync the journal's commits when that falls due."""
        idle_from = time.monotonic()
        while True:
            due = [] if self._closing else self._due(idle_from)
            if due and due[0][0] <= time.monotonic():
                await due[0][1]()
                continue
            timeout = due[0][0] - time.monotonic() if due else None
            try:
                return await asyncio.wait_for(self._queue.get(), timeout=timeout)
            except TimeoutError:
                continue

    def _due(self, idle_from: float) -> list[tuple[float, Callable[[], Awaitable[None]]]]:
        """Return the idle work with the time it falls due, soonest first."""
        settings = self.record.settings
        due: list[tuple[float, Callable[[], Awaitable[None]]]] = []
        if self.stats.unsynced_since is not None:
            due.append((self.stats.unsynced_since + settings.journal_sync_s, self._sync))
        if self.stats.unlinked_since is not None:
            overdue = self.stats.unlinked_since + settings.api_link_max_delay_s
            due.append((min(idle_from + settings.api_link_idle_s, overdue), self._link))
        return sorted(due, key=lambda item: item[0])

    async def _sync(self) -> None:
        """Make the journal's committed uploads durable (one sync) and clear them from it."""
        self.stats.unsynced_since = None
        if self.journal is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.journal.make_durable)
        except Exception:
            log.exception("syncing the record failed; the journal keeps the uploads")
            return
        self.stats.syncs += 1

    async def _compact(self) -> None:
        """Compact fragmented tables (the check skipped by recent commits)."""
        self._since_compact_check = 0
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, _compact_locked, self.record)
        except Exception:
            log.exception("compaction failed; it is tried again after later uploads")

    async def _link(self) -> None:
        if self._since_compact_check:
            await self._compact()
        loop = asyncio.get_running_loop()
        try:
            report = await loop.run_in_executor(self._executor, link_pending, self.record)
        except Exception as exc:
            log.exception("linking failed; it is retried after the next upload")
            self.stats.last_link_error = f"{type(exc).__name__}: {exc}"
            self.stats.unlinked_since = None
            return
        self._linked(report)

    def _linked(self, report: LinkReport) -> None:
        self.stats.links += 1
        self.stats.last_link = report
        self.stats.last_link_error = None
        self.stats.unlinked_since = None

    async def _job(self, job: _Job) -> None:
        self.stats.queued -= 1
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, job.fn)
        except BaseException as exc:
            _settle(job.future, exc=exc)
        else:
            _settle(job.future, result=result)

    async def _commit(self, uploads: list[_Upload]) -> None:
        self.stats.queued -= len(uploads)
        loop = asyncio.get_running_loop()
        # Counting every table's fragments costs a quarter of a small commit: check every
        # COMPACT_CHECK_EVERY commits (one fragment each), so at most that many past the limit.
        self._since_compact_check += 1
        compact = self._since_compact_check >= COMPACT_CHECK_EVERY
        if compact:
            self._since_compact_check = 0
        candidates = [u.candidates for u in uploads]
        if self.journal is not None:
            received = [u.received for u in uploads]
            commit = partial(commit_journalled, self.record, self.journal, candidates, received)
        else:
            commit = partial(commit_uploads, self.record, candidates)
        try:
            results = await loop.run_in_executor(self._executor, commit, compact, self._ingestor)
        except BaseException as exc:
            log.exception(
                "a group of %d uploads failed; nothing of it was acknowledged", len(uploads)
            )
            self._ingestor.clear()  # its view of the ledger may be off: read it afresh
            for upload in uploads:
                _settle(upload.future, exc=exc)
            return
        self.stats.commits += 1
        if self.journal is not None and self.stats.unsynced_since is None:
            self.stats.unsynced_since = time.monotonic()
        for upload, outcomes in zip(uploads, results, strict=True):
            self.stats.uploads += 1
            for outcome in outcomes:
                setattr(self.stats, outcome.status, getattr(self.stats, outcome.status) + 1)
            if any(o.status == "accepted" for o in outcomes) and self.stats.unlinked_since is None:
                self.stats.unlinked_since = time.monotonic()
            _settle(upload.future, result=outcomes)


def _settle(
    future: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():  # the request went away (client disconnected); the write stands
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _compact_locked(record: Record) -> None:
    with record.writer():
        compact_if_fragmented(record)
