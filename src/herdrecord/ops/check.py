"""Verifying a record, and repairing what can be repaired without guessing.

`check_record` reads only. It verifies that every batch in the ledger is there once and
whole, that no tracklet is stored twice, that no rows of unfinished writes linger, that links,
days and events name tracklets and animals that exist, and that the re-ID index matches the
pool. `repair_record` (under the writer lock) removes rows of writes that never committed,
keeps one ledger row of a batch listed twice, and rebuilds a stale index; what it cannot fix
(a batch missing rows: re-send it) it reports.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.linking.pool import DEFAULT_EXEMPLARS_PER_ANIMAL, Pool
from herdrecord.linking.poolindex import index_stamp, open_pool_index
from herdrecord.reid.persist import index_bytes, load_index_bytes
from herdrecord.store.linktable import current_links
from herdrecord.store.record import INDEX_FILE, Record
from herdrecord.store.recovery import RECOVERY_FILE, pending_recovery
from herdrecord.store.schema import BATCH_TABLES
from herdrecord.store.sql import sql_literal

SHOWN = 20  # examples named per problem


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a record."""

    code: str
    message: str
    repairable: bool


@dataclass(frozen=True)
class CheckReport:
    """What a check found (and, after a repair, what was done)."""

    batches: int
    tracklets: int
    problems: list[Problem]
    repaired: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the record has no problem."""
        return not self.problems


def check_record(record: Record) -> CheckReport:
    """Return every problem of the record; change nothing."""
    started = time.perf_counter()
    problems: list[Problem] = []
    ledger = record.dataset("batches").to_table()
    committed = set(ledger.column("batch_id").to_pylist())
    pending = set(record.pending_batch_ids())
    twice = [b for b, n in Counter(ledger.column("batch_id").to_pylist()).items() if n > 1]
    if twice:
        problems.append(
            Problem(
                "duplicate_batch",
                f"{len(twice)} batches listed twice in the ledger: {_some(twice)}",
                True,
            )
        )
    for name in BATCH_TABLES:
        ids = record.dataset(name).to_table(columns=["batch_id"]).column("batch_id")
        stray = set(pc.unique(ids).to_pylist()) - committed
        interrupted = sorted(stray & pending)
        orphans = sorted(stray - pending)
        if orphans:
            problems.append(
                Problem(
                    "uncommitted_rows",
                    f"{name}: rows of {len(orphans)} batches that never "
                    f"committed (invisible; a killed write left them): {_some(orphans)}",
                    True,
                )
            )
        if interrupted:
            problems.append(
                Problem(
                    "interrupted_write",
                    f"{name}: rows of {len(interrupted)} batches a writer announced and has "
                    f"not committed (still writing, or stopped): {_some(interrupted)}; the "
                    "next write removes those of a stopped one (re-send the batches)",
                    True,
                )
            )
    tracklets = record.read_visible("tracklets", ["device_id", "track_id", "batch_id"])
    problems += _batch_counts(ledger, tracklets)
    keys = Counter(
        zip(
            tracklets.column("device_id").to_pylist(),
            tracklets.column("track_id").to_pylist(),
            strict=True,
        )
    )
    doubled = [f"{d}:{t}" for (d, t), n in keys.items() if n > 1]
    if doubled:
        problems.append(
            Problem(
                "duplicate_tracklet",
                f"{len(doubled)} tracklets stored twice: {_some(doubled)}",
                False,
            )
        )
    problems += _references(record, set(keys))
    problems += _index(record)
    problems += _recoveries(record, committed)
    return CheckReport(
        batches=len(committed),
        tracklets=tracklets.num_rows,
        problems=problems,
        seconds=time.perf_counter() - started,
    )


def repair_record(record: Record) -> CheckReport:
    """Fix what can be fixed without guessing; return the check after the repair, with what
    was done."""
    done: list[str] = []
    interrupted = [p for p in check_record(record).problems if p.code == "interrupted_write"]
    with record.writer():  # taking it removes the rows of an interrupted write
        if interrupted:
            done.append(f"removed the rows of an interrupted write ({interrupted[0].message})")
        found = check_record(record)
        codes = {p.code for p in found.problems}
        if "duplicate_batch" in codes:
            done.append(_dedupe_ledger(record))
        if "uncommitted_rows" in codes:
            done += _drop_uncommitted(record)
        if "recovered" in codes and "recovered_resend" not in codes:
            record.location.delete(RECOVERY_FILE)
            done.append("cleared the note of the recovery after a power cut")
        if "stale_index" in codes:
            rows = record.dataset("pool").to_table()
            pool = Pool.from_arrow(rows, record.embedder.dim, DEFAULT_EXEMPLARS_PER_ANIMAL)
            record.location.delete(INDEX_FILE)
            index = open_pool_index(record, pool)
            record.location.write(INDEX_FILE, index_bytes(index, index_stamp(record, len(index))))
            done.append(f"rebuilt the re-ID index ({len(index)} exemplars)")
    after = check_record(record)
    return CheckReport(after.batches, after.tracklets, after.problems, done, after.seconds)


def _batch_counts(ledger: pa.Table, tracklets: pa.Table) -> list[Problem]:
    """A committed batch holds exactly the tracklets its ledger row counts (the other tables
    are thinned by retention, so only tracklets can be counted exactly)."""
    stored = Counter(tracklets.column("batch_id").to_pylist())
    short, extra = [], []
    for batch_id, expected in zip(
        ledger.column("batch_id").to_pylist(), ledger.column("n_tracklets").to_pylist(), strict=True
    ):
        got = stored.get(batch_id, 0)
        if got < expected:
            short.append(f"{batch_id} ({got} of {expected})")
        elif got > expected:
            extra.append(f"{batch_id} ({got} for {expected})")
    problems = []
    if short:
        problems.append(
            Problem(
                "incomplete_batch",
                f"{len(short)} committed batches miss tracklets (re-send them): {_some(short)}",
                False,
            )
        )
    if extra:
        problems.append(
            Problem(
                "extra_rows",
                f"{len(extra)} batches hold more tracklets than "
                f"their ledger row says: {_some(extra)}",
                False,
            )
        )
    return problems


def _references(record: Record, tracklets: set[tuple[str, str]]) -> list[Problem]:
    animals = set(
        record.dataset("animals").to_table(columns=["animal_id"]).column("animal_id").to_pylist()
    )
    problems = []
    links = current_links(record)
    pairs = zip(
        links.column("device_id").to_pylist(),
        links.column("track_id").to_pylist(),
        links.column("animal_id").to_pylist(),
        strict=True,
    )
    no_tracklet, no_animal = [], []
    for device, track, animal in pairs:
        if (device, track) not in tracklets:
            no_tracklet.append(f"{device}:{track}")
        if animal is not None and animal not in animals:
            no_animal.append(f"{device}:{track} -> {animal}")
    if no_tracklet:
        problems.append(
            Problem(
                "dangling_link",
                f"{len(no_tracklet)} links name tracklets the "
                f"record does not hold: {_some(no_tracklet)}",
                False,
            )
        )
    if no_animal:
        problems.append(
            Problem(
                "unknown_animal",
                f"{len(no_animal)} links name animals the record does not hold: {_some(no_animal)}",
                False,
            )
        )
    for table in ("days", "events"):
        named = record.dataset(table).to_table(columns=["animal_id"])
        unknown = sorted(set(named.column("animal_id").to_pylist()) - animals)
        if unknown:
            problems.append(
                Problem(
                    "unknown_animal",
                    f"{table}: rows of {len(unknown)} animals "
                    f"the record does not hold: {_some(unknown)}",
                    False,
                )
            )
    return problems


def _recoveries(record: Record, committed: set[str]) -> list[Problem]:
    """The note of a recovery after a power cut: repairable (cleared) once every batch it
    named is back; until then, what is still to re-send."""
    problems = []
    for recovery in pending_recovery(record.location.read(RECOVERY_FILE)):
        missing = [b for b in recovery.resend_batches if b not in committed]
        text = f"opened after a power cut ({recovery.at}): " + recovery.describe().replace(
            "\n", "; "
        )
        if missing:
            problems.append(
                Problem(
                    "recovered_resend",
                    f"{text}; still to re-send: {len(missing)} batches: {_some(missing)}",
                    False,
                )
            )
        else:
            problems.append(
                Problem(
                    "recovered", f"{text}; every named batch is back: --repair clears this", True
                )
            )
    return problems


def _index(record: Record) -> list[Problem]:
    count = record.table("pool").count_rows()
    data = record.location.read(INDEX_FILE)
    if count == 0 and data is None:
        return []
    if load_index_bytes(data, index_stamp(record, count), record.uri) is None:
        return [
            Problem(
                "stale_index",
                f"the re-ID index ({INDEX_FILE}) does not match the pool "
                f"({count} exemplars); linking rebuilds it, --repair does now",
                True,
            )
        ]
    return []


def _dedupe_ledger(record: Record) -> str:
    table = record.table("batches")
    rows = table.to_lance().to_table()
    counts = Counter(rows.column("batch_id").to_pylist())
    twice = [b for b, n in counts.items() if n > 1]
    keep = []
    for batch_id in twice:
        mine = rows.filter(pc.field("batch_id") == batch_id).sort_by("committed_at")
        keep.append(mine.slice(0, 1))
    listed = ", ".join(sql_literal(b) for b in twice)
    table.delete(f"batch_id IN ({listed})")
    table.add(pa.concat_tables(keep))
    return f"kept one ledger row of {len(twice)} batches listed twice"


def _drop_uncommitted(record: Record) -> list[str]:
    committed = set(
        record.dataset("batches").to_table(columns=["batch_id"]).column("batch_id").to_pylist()
    )
    pending = set(record.pending_batch_ids())
    done = []
    for name in BATCH_TABLES:
        table = record.table(name)
        ids = set(table.to_lance().to_table(columns=["batch_id"]).column("batch_id").to_pylist())
        orphans = sorted(ids - committed - pending)
        if orphans:
            before = table.count_rows()
            table.delete(f"batch_id IN ({', '.join(sql_literal(b) for b in orphans)})")
            done.append(
                f"{name}: removed {before - table.count_rows()} rows of "
                f"{len(orphans)} uncommitted batches"
            )
    return done


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
