"""Retention tiers: what the record keeps of old days, so an animal-year fits the budget.

Everything a day, a link or an event refers to survives; what goes is the raw detail the days
were already derived from:

- observations are thinned with age: after `retain_full_observations_days` each tracklet
  keeps one row per `thin_observations_to_s`, after `retain_thinned_observations_days` one
  per `thin_old_observations_to_s`, always with its first and last row (the rows' `thin_s`,
  set at ingest, says which survive, so a tier is one delete and applying it twice is a no-op);
- sample embeddings are dropped after `retain_samples_days`: linking reads the tracklet's
  descriptor, stored with the tracklet at ingest, so re-linking an old day decides the same;
- keyframes are thinned after `retain_keyframes_days` to those the day chose (and the first
  of each tracklet that has no animal, for review);
- the pool keeps its budgeted exemplars per animal (`pool.py`), embeddings are float16.

"Age" counts back from the newest day in the record, not the wall clock, so a record loaded
late, or a simulated year, ages the same way. Tiers run as days close (after linking) and in
`herdrecord compact`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.config import Settings
from herdrecord.contract.frames import THINNING_STEPS_S
from herdrecord.errors import InvalidInput
from herdrecord.store.compaction import compact_if_fragmented
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record
from herdrecord.store.schema import META_RETAINED_THROUGH


@dataclass(frozen=True)
class RetentionPolicy:
    """Ages (days) after which each kind of detail is thinned or dropped."""

    full_observations_days: float = 14.0
    thin_observations_to_s: int = 120
    thinned_observations_days: float = 90.0
    thin_old_observations_to_s: int = 600
    samples_days: float = 30.0
    keyframes_days: float = 7.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """Return the policy the settings describe, checked."""
        policy = cls(
            full_observations_days=settings.retain_full_observations_days,
            thin_observations_to_s=settings.thin_observations_to_s,
            thinned_observations_days=settings.retain_thinned_observations_days,
            thin_old_observations_to_s=settings.thin_old_observations_to_s,
            samples_days=settings.retain_samples_days,
            keyframes_days=settings.retain_keyframes_days,
        )
        problems = [
            f"{name}: {step} s is not one of {', '.join(map(str, THINNING_STEPS_S))}"
            for name, step in (
                ("thin_observations_to_s", policy.thin_observations_to_s),
                ("thin_old_observations_to_s", policy.thin_old_observations_to_s),
            )
            if step not in THINNING_STEPS_S
        ]
        if policy.thinned_observations_days < policy.full_observations_days:
            problems.append("retain_thinned_observations_days must be >= the full-rate days")
        if policy.thin_old_observations_to_s < policy.thin_observations_to_s:
            problems.append("thin_old_observations_to_s must be >= thin_observations_to_s")
        if problems:
            raise InvalidInput("retention settings: " + "; ".join(problems))
        return policy


@dataclass(frozen=True)
class RetentionReport:
    """What one retention pass removed."""

    through: date | None  # the newest day the ages were counted from
    observations: int  # rows removed
    samples: int
    keyframes: int
    seconds: float


def retain_locked(record: Record, *, force: bool = False) -> RetentionReport:
    """Apply the retention tiers if a day closed since the last pass (always with `force`);
    the caller holds the writer lock."""
    started = time.perf_counter()
    policy = RetentionPolicy.from_settings(record.settings)
    newest = newest_day(record)
    done = _retained_through(record)
    if newest is None or (not force and done is not None and newest <= done):
        return RetentionReport(done, 0, 0, 0, 0.0)
    midnight = datetime.combine(newest, datetime.min.time(), UTC)

    def before(days: float) -> str:
        return f"t < timestamp '{midnight - timedelta(days=days):%Y-%m-%d %H:%M:%S}'"

    removed_obs = _delete(
        record,
        "observations",
        f"{before(policy.full_observations_days)} AND thin_s < {policy.thin_observations_to_s}",
    )
    removed_obs += _delete(
        record,
        "observations",
        f"{before(policy.thinned_observations_days)} AND "
        f"thin_s < {policy.thin_old_observations_to_s}",
    )
    removed_samples = _delete(record, "samples", before(policy.samples_days))
    removed_keyframes = _thin_keyframes(record, midnight - timedelta(days=policy.keyframes_days))
    keep = timedelta(days=record.settings.keep_versions_days)
    for name, removed in (
        ("observations", removed_obs),
        ("samples", removed_samples),
        ("keyframes", removed_keyframes),
    ):
        if removed:
            # Rewrites the fragments the deletes thinned (a day's worth as days close).
            record.table(name).optimize(cleanup_older_than=keep)
    _set_retained_through(record, newest)
    return RetentionReport(
        newest, removed_obs, removed_samples, removed_keyframes, time.perf_counter() - started
    )


def newest_day(record: Record) -> date | None:
    """Return the UTC day of the newest committed tracklet (None for an empty record)."""
    starts = record.read_visible("tracklets", ["start"]).column("start")
    if len(starts) == 0:
        return None
    newest = pc.max(starts).as_py()
    return None if newest is None else newest.astimezone(UTC).date()


def _delete(record: Record, name: str, where: str) -> int:
    table = record.table(name)
    before = table.count_rows()
    table.delete(where)
    return int(before - table.count_rows())


def _thin_keyframes(record: Record, cutoff: datetime) -> int:
    """Remove keyframes older than `cutoff` that no day chose, except the first keyframe of
    each tracklet without an animal (a person may still be asked about it)."""
    table = record.table("keyframes")
    old = table.to_lance().to_table(
        columns=["device_id", "track_id", "t"],
        filter=f"t < timestamp '{cutoff:%Y-%m-%d %H:%M:%S}'",
        with_row_id=True,
    )
    if old.num_rows == 0:
        return 0
    keep = _chosen_keyframes(record, cutoff) | _first_of_unlinked(record, old)
    doomed = [
        row_id
        for row_id, device, track, t in zip(
            old.column("_rowid").to_pylist(),
            old.column("device_id").to_pylist(),
            old.column("track_id").to_pylist(),
            old.column("t").to_pylist(),
            strict=True,
        )
        if (device, track, t) not in keep
    ]
    # One delete per slice bounds the filter's size; each is whole and a rerun finishes.
    for i in range(0, len(doomed), 50_000):
        table.delete("_rowid IN (" + ", ".join(map(str, doomed[i : i + 50_000])) + ")")
    return len(doomed)


def _chosen_keyframes(record: Record, cutoff: datetime) -> set[tuple[str, str, datetime]]:
    days = record.dataset("days").to_table(
        columns=["keyframes"], filter=f"day <= date '{cutoff.date().isoformat()}'"
    )
    refs = pc.list_flatten(days.column("keyframes")).to_pylist()
    return {(r["device_id"], r["track_id"], r["t"]) for r in refs}


def _first_of_unlinked(record: Record, old: pa.Table) -> set[tuple[str, str, datetime]]:
    linked = current_links(record).filter(pc.is_valid(pc.field("animal_id")))
    keys = set(
        zip(
            linked.column("device_id").to_pylist(),
            linked.column("track_id").to_pylist(),
            strict=True,
        )
    )
    first: dict[tuple[str, str], datetime] = {}
    for device, track, t in zip(
        old.column("device_id").to_pylist(),
        old.column("track_id").to_pylist(),
        old.column("t").to_pylist(),
        strict=True,
    ):
        if (device, track) not in keys and (
            (device, track) not in first or t < first[(device, track)]
        ):
            first[(device, track)] = t
    return {(d, k, t) for (d, k), t in first.items()}


def _retained_through(record: Record) -> date | None:
    rows = record.dataset("metadata").to_table(filter=f"key = '{META_RETAINED_THROUGH}'")
    if rows.num_rows == 0:
        return None
    return date.fromisoformat(json.loads(rows.column("value")[0].as_py()))


def _set_retained_through(record: Record, day: date) -> None:
    table = record.table("metadata")
    row = pa.table(
        {"key": [META_RETAINED_THROUGH], "value": [json.dumps(day.isoformat())]},
        schema=table.schema,
    )
    table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(row)


@dataclass(frozen=True)
class CompactReport:
    """What `compact` did: the retention pass, and the tables rewritten."""

    retention: RetentionReport
    compacted: tuple[str, ...]
    bytes_before: int
    bytes_after: int
    seconds: float


def compact(record: Record) -> CompactReport:
    """Apply the retention tiers now, then compact every table and drop old versions past
    the kept window (`keep_versions_days`)."""
    started = time.perf_counter()
    with record.writer():
        before = sum(t.bytes_on_disk for t in record.table_info())
        retention = retain_locked(record, force=True)
        compacted = compact_if_fragmented(record, force=True)
        after = sum(t.bytes_on_disk for t in record.table_info())
    return CompactReport(retention, compacted, before, after, time.perf_counter() - started)
