"""The service's one writer: every write runs on one thread, in arrival order.

Reads never wait for it (Lance readers see the last committed version). Uploads that queue
up while a write runs are committed together, each upload still all-or-nothing, so many small
edge uploads make few Lance versions (group commit). Linking runs on the same thread once the
uploads pause (or at the latest `api_link_max_delay_s` after the first unlinked upload).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from herdrecord.api.problems import ApiError
from herdrecord.ingest import BatchOutcome, Ingestor, compact_if_fragmented
from herdrecord.intake import Candidate
from herdrecord.linking import LinkReport, link_pending
from herdrecord.store import Record

log = logging.getLogger("herdrecord.api")
T = TypeVar("T")
COMPACT_CHECK_EVERY = 16

WITHDRAWN = (
    "not stored: another batch of the same upload was rejected, and an upload is stored "
    "whole or not at all"
)


@dataclass
class _Upload:
    candidates: Sequence[Candidate]
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
    unlinked_since: float | None = field(default=None, repr=False)


class Writer:
    """Runs the record's writes one at a time on its own thread; use `start` and `close`."""

    def __init__(self, record: Record) -> None:
        self.record = record
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
        self._executor.shutdown(wait=True)

    async def upload(self, candidates: Sequence[Candidate]) -> list[BatchOutcome]:
        """Commit one upload's batches (all or none); return each batch's outcome."""
        future: asyncio.Future[list[BatchOutcome]] = asyncio.get_running_loop().create_future()
        await self._put(_Upload(candidates, future))
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
        """Wait for the next write; link when the uploads pause or linking is overdue."""
        while True:
            since = self.stats.unlinked_since
            if since is None:
                return await self._queue.get()
            settings = self.record.settings
            overdue = since + settings.api_link_max_delay_s - time.monotonic()
            if overdue <= 0 and not self._closing:
                await self._link()
                continue
            try:
                return await asyncio.wait_for(
                    self._queue.get(), timeout=min(settings.api_link_idle_s, overdue)
                )
            except TimeoutError:
                if not self._closing:
                    await self._link()

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
        try:
            results = await loop.run_in_executor(
                self._executor,
                commit_uploads,
                self.record,
                [u.candidates for u in uploads],
                compact,
                self._ingestor,
            )
        except BaseException as exc:
            log.exception(
                "a group of %d uploads failed; nothing of it was acknowledged", len(uploads)
            )
            self._ingestor.clear()  # its view of the ledger may be off: read it afresh
            for upload in uploads:
                _settle(upload.future, exc=exc)
            return
        self.stats.commits += 1
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


def _ingestor(record: Record, known: list[Ingestor] | None) -> Ingestor:
    """Return an ingestor for this commit: the last one, renewed, while the ledger is still
    the version it wrote (no other process ingested since), else a new one."""
    if known and known[0].ledger_version == int(record.table("batches").version):
        known[0].renew()
        return known[0]
    ingestor = Ingestor(record)
    if known is not None:
        known[:] = [ingestor]
    return ingestor


def _compact_locked(record: Record) -> None:
    with record.writer():
        compact_if_fragmented(record)


def _withdrawn(
    outcomes: list[BatchOutcome | None], candidates: Sequence[Candidate]
) -> list[BatchOutcome | None]:
    """Return the outcomes of a rolled-back upload: what was queued (or was a duplicate of
    what was queued) is now rejected as withdrawn."""
    queued = {c.batch_id for o, c in zip(outcomes, candidates, strict=True) if o is None}
    return [
        BatchOutcome(c.source, c.batch_id, "rejected", (WITHDRAWN,))
        if o is None or (o.status == "duplicate" and c.batch_id in queued)
        else o
        for o, c in zip(outcomes, candidates, strict=True)
    ]


def commit_uploads(
    record: Record,
    uploads: Sequence[Sequence[Candidate]],
    compact: bool = True,
    known: list[Ingestor] | None = None,
) -> list[list[BatchOutcome]]:
    """Commit uploads together, each whole or not at all; return each one's batch outcomes.

    A batch of an upload is written only if no batch of the same upload is rejected, so a
    client that sees 422 knows nothing of its upload was stored (duplicates stay stored).
    `known` carries the previous commit's ingestor (its copy of the ledger) to the next.
    """
    results: list[list[BatchOutcome | None]] = []
    with record.writer():
        ingestor = _ingestor(record, known)
        written: dict[str, BatchOutcome] = {}
        for candidates in uploads:
            mark = ingestor.mark()
            outcomes = [ingestor.offer(candidate) for candidate in candidates]
            if any(o is not None and o.status == "rejected" for o in outcomes):
                ingestor.rollback(mark)
                outcomes = _withdrawn(outcomes, candidates)
            results.append(outcomes)
            if ingestor.group_full():
                written.update((o.batch_id or "", o) for o in ingestor.flush())
        written.update((o.batch_id or "", o) for o in ingestor.flush())
        if compact:
            compact_if_fragmented(record)
    return [
        [
            o if o is not None else written[c.batch_id or ""]
            for o, c in zip(outcomes, candidates, strict=True)
        ]
        for outcomes, candidates in zip(results, uploads, strict=True)
    ]
