"""Ingest edge batches: check, deduplicate, and commit them atomically through one writer.

A batch becomes visible only when its ledger row (table `batches`) is written. Before the
batch tables are touched, the writer announces the batch ids in a pending file; a writer that
finds that file on start removes the rows of announced batches that never reached the
ledger. So a crash at any moment leaves only whole batches, and re-sending completes the
interrupted one. Consecutive valid batches are written together, one Lance append per table,
so that many small uploads do not make many small fragments.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.contract.frames import BatchFrames, stored_rows
from herdrecord.contract.rules import Expectations, check_frames
from herdrecord.ingest.sources import Candidate
from herdrecord.store.compaction import compact_if_fragmented
from herdrecord.store.record import PENDING_FILE, Record
from herdrecord.store.schema import BATCH_TABLES
from herdrecord.store.sql import sql_literal

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one batch."""

    source: str
    batch_id: str | None
    status: Status
    problems: tuple[str, ...] = ()
    rows: int = 0


@dataclass(frozen=True)
class IngestReport:
    """The outcome of every batch of one ingest, and the tables it compacted."""

    outcomes: tuple[BatchOutcome, ...]
    compacted: tuple[str, ...]
    seconds: float
    farm_adopted: str | None = None  # the farm a record made without one took from a batch

    def count(self, status: Status) -> int:
        """Return how many batches ended with `status`."""
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def rows_written(self) -> int:
        """Return the rows the accepted batches added."""
        return sum(outcome.rows for outcome in self.outcomes if outcome.status == "accepted")


@dataclass
class _Group:
    """Valid batches waiting to be written together."""

    frames: list[BatchFrames] = field(default_factory=list)
    outcomes: list[tuple[int, BatchOutcome]] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    track_keys: set[tuple[str, str]] = field(default_factory=set)
    observation_rows: int = 0


class Ingestor:
    """Commit batches to one record; use inside `record.writer()`."""

    def __init__(self, record: Record, now: datetime | None = None) -> None:
        self.record = record
        self.expect = Expectations.for_record(
            record.embedder.name,
            record.embedder.dim,
            record.behaviours,
            record.settings,
            now,
            embedder_weights=record.embedder.weights_sha256,
            embedder_weights_required=record.embedder.weights_required,
            farm_id=self._farm_expected(),
        )
        batches = record.table("batches")
        self.ledger_version = int(batches.version)  # the ledger as read (and then written)
        ledger = batches.to_lance().to_table(columns=["batch_id", "content_sha256"])
        self.ledger: dict[str, str] = dict(
            zip(
                ledger.column("batch_id").to_pylist(),
                ledger.column("content_sha256").to_pylist(),
                strict=True,
            )
        )
        self.group = _Group()
        self._outcomes: list[tuple[int, BatchOutcome]] = []
        self._stored: dict[str, pa.Table] = {}
        self._offered = 0
        self.farm_adopted: str | None = None  # the farm this ingest gave a farm-less record
        self._adopted_at: int | None = None  # the queued batch that named it, until written

    def _farm_expected(self) -> str | None:
        """Return the farm a batch must name: the record's, or None while a record made
        without one waits for its first batch (a ledger of one farm, left by a run stopped
        before it said so, names it now)."""
        record = self.record
        if not record.farm_from_first_batch:
            return record.farm_id
        farms = record.dataset("batches").to_table(columns=["farm_id"])
        named = sorted(set(farms.column("farm_id").to_pylist()))
        if len(named) == 1:
            record.adopt_farm(named[0])
            return record.farm_id
        return None

    def renew(self, now: datetime | None = None) -> None:
        """Start a new ingest with what this one knows (the ledger, the devices' track ids):
        a new clock for the checks, nothing queued. Only while no other writer wrote."""
        record = self.record
        self.expect = Expectations.for_record(
            record.embedder.name,
            record.embedder.dim,
            record.behaviours,
            record.settings,
            now,
            embedder_weights=record.embedder.weights_sha256,
            embedder_weights_required=record.embedder.weights_required,
            farm_id=self._farm_expected(),
        )
        self.group = _Group()
        self._outcomes = []
        self._offered = 0
        self.farm_adopted = self._adopted_at = None

    @property
    def outcomes(self) -> tuple[BatchOutcome, ...]:
        """Return the final outcomes so far, in the order the batches were offered."""
        return tuple(outcome for _, outcome in sorted(self._outcomes, key=lambda item: item[0]))

    def offer(self, candidate: Candidate) -> BatchOutcome | None:
        """Check one batch; queue it for writing, or return its final outcome at once."""
        self._offered += 1
        if candidate.frames is None:
            return self._done(candidate, "rejected", candidate.problems)
        frames = candidate.frames
        batch_id = frames.header.batch_id
        known = self.ledger.get(batch_id) or self.group.sha256.get(batch_id)
        sha = frames.content_sha256()
        if known is not None:
            # Judged against what was committed, before today's rules and limits.
            if known == sha:
                return self._done(candidate, "duplicate", ())
            return self._done(candidate, "rejected", (_conflict(batch_id, known, sha),))
        problems = check_frames(frames, self.expect)
        if problems:
            return self._done(candidate, "rejected", tuple(problems))
        reused = self._reused_track_ids(frames)
        if reused:
            return self._done(candidate, "rejected", tuple(reused))
        group = self.group
        group.frames.append(frames)
        group.sha256[batch_id] = sha
        group.sources[batch_id] = candidate.source
        device = frames.header.device_id
        group.track_keys.update(
            (device, t) for t in frames.tracklets.column("track_id").to_pylist()
        )
        group.observation_rows += frames.observations.num_rows
        if self.expect.farm_id is None:  # a farm-less record: this batch names its farm
            self.expect = replace(self.expect, farm_id=frames.header.farm_id)
            self._adopted_at = len(group.frames) - 1
        group.outcomes.append(
            (self._offered, BatchOutcome(candidate.source, batch_id, "accepted", (), frames.n_rows))
        )
        return None

    def mark(self) -> int:
        """Return a mark to `rollback` to: the batches queued so far stay queued."""
        return len(self.group.frames)

    def rollback(self, mark: int) -> None:
        """Un-queue the batches offered since `mark`; they will not be written."""
        group = self.group
        for frames in group.frames[mark:]:
            batch_id = frames.header.batch_id
            del group.sha256[batch_id]
            del group.sources[batch_id]
            device = frames.header.device_id
            group.track_keys.difference_update(
                (device, t) for t in frames.tracklets.column("track_id").to_pylist()
            )
            group.observation_rows -= frames.observations.num_rows
        del group.frames[mark:]
        del group.outcomes[mark:]
        if self._adopted_at is not None and self._adopted_at >= mark:
            self.expect = replace(self.expect, farm_id=None)
            self._adopted_at = None

    def group_full(self) -> bool:
        """Return whether the queued batches should be written now."""
        return self.group.observation_rows >= self.record.settings.write_group_rows

    def flush(self) -> list[BatchOutcome]:
        """Write the queued batches (one append per table, ledger last); return their outcomes."""
        group = self.group
        if not group.frames:
            return []
        record = self.record
        batch_ids = [frames.header.batch_id for frames in group.frames]
        record.ensure_writer()
        _announce(record, batch_ids)
        dim = record.embedder.dim
        per_table: dict[str, list[pa.Table]] = {name: [] for name in BATCH_TABLES}
        for frames in group.frames:
            for name, rows in stored_rows(frames, dim).items():
                per_table[name].append(rows)
        for name in BATCH_TABLES:
            table = record.table(name)
            rows = pa.concat_tables(per_table[name]).cast(table.schema)
            if rows.num_rows:
                table.add(rows)
        ledger = record.table("batches")
        record.ensure_writer()  # a lost lease stops here: the rows stay invisible
        ledger.add(_ledger_rows(group, record))  # the commit point
        self.ledger_version = int(ledger.version)
        if self._adopted_at is not None:  # a crash before this line: the next run adopts
            farm = group.frames[self._adopted_at].header.farm_id
            record.adopt_farm(farm)
            self.farm_adopted, self._adopted_at = farm, None
        record.location.delete(PENDING_FILE)
        for frames in group.frames:
            self.ledger[frames.header.batch_id] = group.sha256[frames.header.batch_id]
            self._remember_written(frames)
        self._outcomes.extend(group.outcomes)
        self.group = _Group()
        return [outcome for _, outcome in group.outcomes]

    def _done(
        self, candidate: Candidate, status: Status, problems: tuple[str, ...]
    ) -> BatchOutcome:
        outcome = BatchOutcome(candidate.source, candidate.batch_id, status, problems)
        self._outcomes.append((self._offered, outcome))
        return outcome

    def _reused_track_ids(self, frames: BatchFrames) -> list[str]:
        """Return problems for track ids this device already used, stored or queued."""
        device = frames.header.device_id
        track_ids = frames.tracklets.column("track_id").combine_chunks()
        problems = [
            f"tracklets[{i}].track_id: {track_id!r} was already sent by {device} "
            "in another batch of this ingest"
            for i, track_id in enumerate(track_ids.to_pylist())
            if (device, track_id) in self.group.track_keys
        ]
        stored = self._stored_tracks(device)
        if stored.num_rows:
            where = np.asarray(
                pc.index_in(track_ids, value_set=stored.column("track_id")).fill_null(-1)
            )
            owners = stored.column("batch_id")
            for i in np.flatnonzero(where >= 0):
                problems.append(
                    f"tracklets[{i}].track_id: {track_ids[int(i)].as_py()!r} is already stored "
                    f"for {device} (batch {owners[int(where[i])].as_py()}); track ids are unique "
                    "per device"
                )
        return problems

    def _stored_tracks(self, device: str) -> pa.Table:
        """Return the device's stored (track_id, batch_id), read once per ingest."""
        stored = self._stored.get(device)
        if stored is None:
            stored = self.record.dataset("tracklets").to_table(
                columns=["track_id", "batch_id"], filter=f"device_id = {sql_literal(device)}"
            )
            self._stored[device] = stored
        return stored

    def _remember_written(self, frames: BatchFrames) -> None:
        """Add a written batch's track ids to the device's cached stored keys."""
        device = frames.header.device_id
        if device not in self._stored:
            return
        n = frames.tracklets.num_rows
        written = pa.table(
            {
                "track_id": frames.tracklets.column("track_id").combine_chunks(),
                "batch_id": pa.repeat(pa.scalar(frames.header.batch_id, pa.string()), n),
            }
        )
        stored = self._stored[device]
        self._stored[device] = pa.concat_tables([stored, written.cast(stored.schema)])


def ingest(
    record: Record,
    candidates: Iterable[Candidate],
    on_outcome: Callable[[BatchOutcome], None] | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Commit every valid batch of `candidates` to the record through its single writer."""
    started = datetime.now(UTC)
    notify = on_outcome or (lambda outcome: None)
    with record.writer():
        ingestor = Ingestor(record, now)
        for candidate in candidates:
            outcome = ingestor.offer(candidate)
            if outcome is not None:
                notify(outcome)
            if ingestor.group_full():
                for written in ingestor.flush():
                    notify(written)
        for written in ingestor.flush():
            notify(written)
        compacted = compact_if_fragmented(record)
    seconds = (datetime.now(UTC) - started).total_seconds()
    return IngestReport(ingestor.outcomes, compacted, seconds, ingestor.farm_adopted)


def _announce(record: Record, batch_ids: list[str]) -> None:
    """Durably note the batch ids about to be written, before any of their rows."""
    record.location.write(PENDING_FILE, json.dumps({"batch_ids": batch_ids}).encode())


def _ledger_rows(group: _Group, record: Record) -> pa.Table:
    committed_at = datetime.now(UTC)
    rows = [
        {
            "batch_id": f.header.batch_id,
            "farm_id": f.header.farm_id,
            "device_id": f.header.device_id,
            "content_sha256": group.sha256[f.header.batch_id],
            "committed_at": committed_at,
            "source": group.sources[f.header.batch_id],
            "n_tracklets": f.tracklets.num_rows,
            "n_samples": f.samples.num_rows,
            "n_observations": f.observations.num_rows,
            "n_keyframes": f.keyframes.num_rows,
        }
        for f in group.frames
    ]
    return pa.Table.from_pylist(rows, schema=record.table("batches").schema)


def _conflict(batch_id: str, stored: str, sent: str) -> str:
    return (
        f"batch_id: {batch_id!r} was already committed with different content "
        f"(stored {stored[:12]}, sent {sent[:12]}); give changed content a new batch_id"
    )
