"""Byte accounting: what an animal-year costs on disk, per table, against the budget.

Bytes are measured from the files of each table's current version (what a compacted record
holds; old versions kept for recovery are reported apart). An animal-day is a row of
`days`. Two figures per table:

- measured: live bytes / animal-days x 365, what the record costs at its present mix of
  young and old data;
- projected: the steady state of an animal present all year under the retention tiers. Rows
  per animal-day are measured on the record's most recent week (full rate), and the tiers
  are applied to them: observations keep the rows whose `thin_s` survives each tier (known
  exactly from the young rows), samples are kept `retain_samples_days`, keyframes are kept
  all for `retain_keyframes_days` and then the days' chosen ones; the pool is a fixed
  budget per animal; the other tables grow linearly. A young record is judged by this.

MB are 10^6 bytes, as in the design's 94 MB per animal per year (257 KB per animal-day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow.compute as pc

from herdrecord.days.retention import RetentionPolicy, newest_day
from herdrecord.store.record import Record

YEAR_DAYS = 365
RECENT_DAYS = 7  # the window whose rows per animal-day stand for full-rate data


@dataclass(frozen=True)
class TableBudget:
    """One table's bytes and what they come to per animal-year."""

    name: str
    rows: int
    live_bytes: int  # files of the current version
    disk_bytes: int  # everything under the table's directory, old versions included
    measured_mb_per_animal_year: float
    projected_mb_per_animal_year: float


@dataclass(frozen=True)
class BudgetReport:
    """A record's bytes against the per-animal-year budget."""

    animals: int
    animal_days: int
    first_day: date | None
    last_day: date | None
    tables: tuple[TableBudget, ...]
    budget_mb_per_animal_year: float

    @property
    def measured_mb_per_animal_year(self) -> float:
        """Return the whole record's measured MB per animal-year."""
        return sum(t.measured_mb_per_animal_year for t in self.tables)

    @property
    def projected_mb_per_animal_year(self) -> float:
        """Return the whole record's projected steady-state MB per animal-year."""
        return sum(t.projected_mb_per_animal_year for t in self.tables)

    @property
    def within_budget(self) -> bool:
        """Return whether the projection fits the budget."""
        return self.projected_mb_per_animal_year <= self.budget_mb_per_animal_year


def measure_budget(record: Record) -> BudgetReport:
    """Measure every table's bytes and project them to an animal-year under retention."""
    policy = RetentionPolicy.from_settings(record.settings)
    days = record.dataset("days").to_table(columns=["animal_id", "day", "keyframes"])
    animal_days = days.num_rows
    animals = len(pc.unique(days.column("animal_id"))) if animal_days else 0
    per_day = _per_animal_day_rates(record, policy)
    tables = []
    for name in record.table_names():
        dataset = record.dataset(name)
        rows = dataset.count_rows()
        live = _live_bytes(record, name, dataset)
        measured = _mb(live / animal_days * YEAR_DAYS) if animal_days else 0.0
        row_bytes = live / rows if rows else 0.0
        if name in per_day:
            projected = _mb(row_bytes * per_day[name])
        elif name == "pool":
            projected = _mb(live / animals) if animals else 0.0
        else:
            projected = measured
        tables.append(
            TableBudget(
                name, rows, live, _disk_bytes(record, name), round(measured, 3), round(projected, 3)
            )
        )
    day_values = days.column("day")
    return BudgetReport(
        animals=animals,
        animal_days=animal_days,
        first_day=pc.min(day_values).as_py() if animal_days else None,
        last_day=pc.max(day_values).as_py() if animal_days else None,
        tables=tuple(tables),
        budget_mb_per_animal_year=record.settings.budget_mb_per_animal_year,
    )


def _per_animal_day_rates(record: Record, policy: RetentionPolicy) -> dict[str, float]:
    """Return, per batch table, the rows one animal keeps over a year under the tiers,
    from the rows per animal-day of the most recent week."""
    newest = newest_day(record)
    if newest is None:
        return {}
    since = datetime.combine(newest - timedelta(days=RECENT_DAYS - 1), datetime.min.time(), UTC)
    recent = f"t >= timestamp '{since:%Y-%m-%d %H:%M:%S}'"
    con = duckdb.connect()
    con.register(
        "days",
        record.dataset("days").to_table(
            columns=["animal_id", "day", "keyframes"],
            filter=f"day >= date '{since.date().isoformat()}'",
        ),
    )
    con.register("obs", record.read_visible("observations", ["t", "thin_s"], where=recent))
    con.register("smp", record.read_visible("samples", ["t"], where=recent))
    con.register("kf", record.read_visible("keyframes", ["t"], where=recent))
    (animal_days, chosen) = con.sql("SELECT count(*), avg(len(keyframes)) FROM days").fetchall()[0]
    if not animal_days:
        return {}
    full, thinned, old = con.sql(
        "SELECT count(*), count(*) FILTER (thin_s >= $a), count(*) FILTER (thin_s >= $b) FROM obs",
        params={"a": policy.thin_observations_to_s, "b": policy.thin_old_observations_to_s},
    ).fetchall()[0]
    samples = con.sql("SELECT count(*) FROM smp").fetchall()[0][0]
    keyframes = con.sql("SELECT count(*) FROM kf").fetchall()[0][0]
    full_days = min(policy.full_observations_days, YEAR_DAYS)
    thin_days = min(policy.thinned_observations_days, YEAR_DAYS) - full_days
    old_days = YEAR_DAYS - full_days - thin_days
    kf_days = min(policy.keyframes_days, YEAR_DAYS)
    per_day_keyframes = keyframes / animal_days
    return {
        "observations": (full * full_days + thinned * thin_days + old * old_days) / animal_days,
        "samples": samples / animal_days * min(policy.samples_days, YEAR_DAYS),
        "keyframes": per_day_keyframes * kf_days
        + min(float(chosen or 0.0), per_day_keyframes) * (YEAR_DAYS - kf_days),
    }


def _live_bytes(record: Record, name: str, dataset: Any) -> int:
    """Return the bytes of the rows of a Lance dataset's current version: its data files,
    less the share of rows deleted from them (what compaction will give back)."""
    total = 0.0
    for fragment in dataset.get_fragments():
        metadata = fragment.metadata
        size = 0
        for data_file in metadata.files:
            file_size = data_file.file_size_bytes
            if file_size is None:  # not recorded by older writers: ask the file system
                file_size = record.location.size_under(f"{name}.lance/data/{data_file.path}")
            size += int(file_size)
        physical = metadata.physical_rows or 0
        deleted = metadata.num_deletions or 0
        total += size * (physical - deleted) / physical if physical else 0
    return round(total)


def _disk_bytes(record: Record, name: str) -> int:
    return record.location.size_under(f"{name}.lance")


def _mb(size: float) -> float:
    return size / 1e6
