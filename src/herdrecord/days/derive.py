"""Per-animal days: each animal's day materialised from its linked tracklets' observations.

A day row holds minutes per behaviour, activity, distance and speed, lying bouts, gait,
projected area, the day's chosen keyframes, link confidence and anomaly flags. Days follow
the links: linking refreshes the days it touched, and merge, split and re-link re-derive
them, so a day always tells the current identity story. Weight estimates are not stored:
`read_days` adds them from the record's area -> weight calibration at read time
(`weights.py`), so a new scale weighing improves every day at once.

Days are UTC calendar days. A tracklet's time is shared equally among its observation rows,
so minutes stay right after retention thins old observations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.days.anomalies import AnomalyConfig, flag_days
from herdrecord.days.keyframe_choice import choose_keyframes
from herdrecord.days.weights import WeightCalibration, calibrate, calibration_pairs
from herdrecord.events.store import current_events
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record
from herdrecord.store.schema import days_schema
from herdrecord.store.sql import sql_literal

ACTIVE_BEHAVIOURS = frozenset({"walking", "eating", "drinking", "exploring", "interacting"})
BOUT_GAP_S = 15 * 60  # a lying bout survives a gap in tracking this long
BOUT_MIN_S = 120  # shorter lying runs are classifier flicker, not bouts
BOUT_BREAK_S = 60  # this long up (rows between lying rows) ends a bout
CHUNK_DAYS = 14
DAYS_OWED_FILE = ".herdrecord.days-owed.json"  # days whose links changed, until re-derived


@dataclass(frozen=True)
class DaysConfig:
    """How days are derived."""

    keyframes_per_day: int = 6
    anomalies: AnomalyConfig = field(default_factory=AnomalyConfig)


@dataclass(frozen=True)
class DaysReport:
    """What one refresh of days wrote."""

    days: int  # calendar days refreshed
    rows: int  # animal-day rows derived
    seconds: float


def refresh_days_locked(
    record: Record,
    days: Iterable[date],
    animals: Iterable[str] | None = None,
    config: DaysConfig | None = None,
) -> DaysReport:
    """Re-derive the given days (of the given animals, or of every animal) from the current
    links, and the anomaly flags that depend on them; the caller holds the writer lock."""
    started = time.perf_counter()
    config = config or DaysConfig(
        keyframes_per_day=record.settings.keyframes_per_day,
        # A day under the coverage floor is partial: too little seen to flag.
        anomalies=AnomalyConfig(min_observed_min=60.0 * record.settings.day_coverage_floor_h),
    )
    wanted = sorted(set(days))
    animal_set = None if animals is None else set(animals)
    rows = 0
    # A fortnight at a time: one chunk's observations are what is held in memory.
    for i in range(0, len(wanted), CHUNK_DAYS):
        rows += _refresh_chunk(record, wanted[i : i + CHUNK_DAYS], animal_set, config)
    return DaysReport(len(wanted), rows, time.perf_counter() - started)


def _refresh_chunk(
    record: Record, wanted: list[date], animal_set: set[str] | None, config: DaysConfig
) -> int:
    figures = derive_figures(record, wanted, animal_set, config)
    reach = config.anomalies.baseline_days + config.anomalies.lag_days
    window_from, window_to = wanted[0] - timedelta(days=reach), wanted[-1] + timedelta(days=reach)
    existing = _read_rows(record, window_from, window_to)
    in_scope = pc.is_in(existing.column("day"), value_set=pa.array(wanted, pa.date32()))
    if animal_set is not None:
        in_scope = pc.and_(
            in_scope, pc.is_in(existing.column("animal_id"), value_set=pa.array(sorted(animal_set)))
        )
    kept = existing.filter(pc.invert(in_scope))
    combined = pa.concat_tables([kept, figures]).sort_by([("day", "ascending")])
    flags = flag_days(_with_eating_share(combined), config.anomalies)
    combined = combined.set_column(
        combined.schema.get_field_index("anomalies"),
        "anomalies",
        pa.array(flags.anomalies, pa.list_(pa.string())),
    ).set_column(
        combined.schema.get_field_index("anomaly_z"),
        "anomaly_z",
        pa.array(flags.anomaly_z, pa.float32()),
    )
    changed = combined.filter(pc.field("day") >= wanted[0])
    scope = "day IN (" + ", ".join(f"date '{d.isoformat()}'" for d in wanted) + ")"
    if animal_set is not None:
        scope += " AND animal_id IN (" + ", ".join(sql_literal(a) for a in sorted(animal_set)) + ")"
    (
        record.table("days")
        .merge_insert(["animal_id", "day"])
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .when_not_matched_by_source_delete(scope)
        .execute(changed.cast(record.table("days").schema))
    )
    return int(figures.num_rows)


def owe_days(record: Record, days: Iterable[date]) -> set[date]:
    """Note durably that these days are about to change, before their links are written;
    return them with the days an interrupted writer still owes.

    A writer killed after its links and before its days leaves the note behind, so the next
    one re-derives those days even when it finds nothing left to link.
    """
    owed = set(days) | owed_days(record)
    if owed:
        text = json.dumps(sorted(day.isoformat() for day in owed))
        record.location.write(DAYS_OWED_FILE, text.encode())
    return owed


def owed_days(record: Record) -> set[date]:
    """Return the days an interrupted writer changed the links of and did not re-derive."""
    text = record.location.read(DAYS_OWED_FILE)
    return set() if text is None else {date.fromisoformat(d) for d in json.loads(text)}


def settle_days_locked(record: Record, days: set[date]) -> DaysReport:
    """Re-derive the days `owe_days` returned, then clear the note; the caller holds the
    writer lock."""
    report = refresh_days_locked(record, days)
    if days:
        record.location.delete(DAYS_OWED_FILE)
    return report


def rebuild_days(record: Record, config: DaysConfig | None = None) -> DaysReport:
    """Re-derive every day of the record from scratch."""
    with record.writer():
        starts = record.read_visible("tracklets", ["start"]).column("start")
        all_days = sorted(
            set(pc.cast(pc.floor_temporal(starts, unit="day"), pa.date32()).to_pylist())
        )
        report = refresh_days_locked(record, all_days, None, config)
        if all_days:
            listed = ", ".join(f"date '{d.isoformat()}'" for d in all_days)
            record.table("days").delete(f"day NOT IN ({listed})")
        else:
            record.table("days").delete("true")
        return report


def read_days(
    record: Record,
    animal_id: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pa.Table:
    """Return stored days (of one animal, within [start, end]) sorted by animal and day, with
    `weight_est_kg` from the record's current calibration (null without one)."""
    return read_days_calibrated(record, weight_calibration(record), animal_id, start, end)


def read_days_calibrated(
    record: Record,
    calibration: WeightCalibration | None,
    animal_id: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pa.Table:
    """Return stored days as `read_days` does, with weights from the calibration given."""
    where = []
    if animal_id is not None:
        where.append(f"animal_id = {sql_literal(animal_id)}")
    if start is not None:
        where.append(f"day >= date '{start.isoformat()}'")
    if end is not None:
        where.append(f"day <= date '{end.isoformat()}'")
    rows = record.dataset("days").to_table(filter=" AND ".join(where) or None)
    rows = rows.sort_by([("animal_id", "ascending"), ("day", "ascending")])
    area = rows.column("area_px").to_numpy(zero_copy_only=False)
    area = np.asarray([np.nan if a is None else a for a in area], dtype=np.float64)
    estimate = calibration.estimate_kg(area) if calibration else np.full(len(area), np.nan)
    return rows.append_column(
        pa.field("weight_est_kg", pa.float32(), metadata={"doc": "weight from area, kg"}),
        pa.array(np.round(estimate, 1), pa.float32(), mask=~np.isfinite(estimate)),
    )


def weight_calibration(record: Record) -> WeightCalibration | None:
    """Return the area -> weight fit from the record's scale weights and days (None with
    fewer than a handful of weighings)."""
    return calibration_and_weighings(record)[0]


_CALIBRATIONS: dict[tuple[str, int, int], tuple[WeightCalibration | None, int]] = {}
_CALIBRATIONS_KEPT = 16


def calibration_and_weighings(record: Record) -> tuple[WeightCalibration | None, int]:
    """Return the area -> weight fit and the weighings it rests on.

    The fit is cross-validated, so it is computed once per version of `days` and `events`
    (what it is made of) and reused: a timeline read does not refit it.
    """
    days_table, events_table = record.dataset("days"), record.dataset("events")
    key = (record.uri, days_table.version, events_table.version)
    found = _CALIBRATIONS.get(key)
    if found is not None:
        return found
    days = days_table.to_table(columns=["animal_id", "day", "area_px"])
    pairs = calibration_pairs(days, scale_weights(record))
    found = (calibrate(pairs), pairs.num_rows)
    if len(_CALIBRATIONS) >= _CALIBRATIONS_KEPT:
        _CALIBRATIONS.pop(next(iter(_CALIBRATIONS)), None)
    _CALIBRATIONS[key] = found
    return found


def scale_weights(record: Record) -> pa.Table:
    """Return (animal_id, at, value) of the `weight` events in force."""
    return current_events(record, kind="weight").select(["animal_id", "at", "value"])


def derive_figures(
    record: Record, days: list[date], animals: set[str] | None, config: DaysConfig
) -> pa.Table:
    """Return the day rows (flags empty) of the given days and animals, from the observations
    of their currently linked tracklets."""
    lo = datetime.combine(days[0], datetime.min.time(), UTC)
    hi = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), UTC)
    span = f"t >= timestamp '{lo:%Y-%m-%d %H:%M:%S}' AND t < timestamp '{hi:%Y-%m-%d %H:%M:%S}'"
    links = current_links(record).filter(pc.is_valid(pc.field("animal_id")))
    if animals is not None:
        links = links.filter(pc.is_in(pc.field("animal_id"), value_set=pa.array(sorted(animals))))
    con = duckdb.connect()
    con.register("cur", links.select(["device_id", "track_id", "animal_id", "confidence"]))
    con.register(
        "trk", record.read_visible("tracklets", ["device_id", "track_id", "pen_id", "start", "end"])
    )
    con.register(
        "obs",
        record.read_visible(
            "observations",
            ["device_id", "track_id", "t", "behaviour", "speed_px_s", "gait_score", "area_px"],
            where=span,
        ),
    )
    con.sql(
        f"""
        CREATE TEMP TABLE o AS
        SELECT c.animal_id, c.confidence, k.pen_id, o.*,
               CAST(timezone('UTC', o.t) AS DATE) AS day,
               greatest(epoch(k."end") - epoch(k.start), 1.0)
                 / count(*) OVER (PARTITION BY o.device_id, o.track_id) AS w
        FROM obs o JOIN trk k USING (device_id, track_id) JOIN cur c USING (device_id, track_id)
        WHERE CAST(timezone('UTC', o.t) AS DATE) IN ({", ".join(f"DATE '{d}'" for d in days)})
        """
    )
    vocabulary = list(record.behaviours)
    lying = [b for b in vocabulary if b.startswith("lying")]
    active = [b for b in vocabulary if b in ACTIVE_BEHAVIOURS]
    figures = con.sql(_FIGURES_SQL, params={"lying": lying, "active": active}).to_arrow_table()
    if "eating" not in vocabulary:
        figures = figures.set_column(
            figures.schema.get_field_index("eating_min"),
            "eating_min",
            pa.nulls(figures.num_rows, pa.float32()),
        )
    bouts = _lying_bouts(con, lying)
    keyframes = choose_keyframes(record, con, span, config.keyframes_per_day)
    return _assemble(figures, bouts, keyframes)


_FIGURES_SQL = """
WITH by_pen AS (
    SELECT animal_id, day, pen_id, sum(w) AS s FROM o GROUP BY ALL
), pens AS (
    SELECT animal_id, day, arg_max(pen_id, s) AS pen_id FROM by_pen GROUP BY ALL
), per_behaviour AS (
    SELECT animal_id, day,
           list({'behaviour': behaviour, 'minutes': CAST(m AS FLOAT)} ORDER BY behaviour) AS bm
    FROM (SELECT animal_id, day, behaviour, sum(w) / 60 AS m FROM o GROUP BY ALL)
    GROUP BY ALL
)
SELECT o.animal_id, o.day, any_value(p.pen_id) AS pen_id,
       count(DISTINCT o.device_id || ':' || o.track_id) AS n_tracklets,
       sum(w) / 60 AS observed_min,
       any_value(b.bm) AS behaviour_min,
       coalesce(sum(w) FILTER (list_contains($lying, behaviour)), 0) / 60 AS lying_min,
       coalesce(sum(w) FILTER (list_contains($lying, behaviour)), 0) / sum(w) AS lying_share,
       coalesce(sum(w) FILTER (behaviour = 'eating'), 0) / 60 AS eating_min,
       coalesce(sum(w) FILTER (list_contains($active, behaviour)), 0) / sum(w) AS activity_index,
       sum(speed_px_s * w) AS distance_px,
       sum(speed_px_s * w) / sum(w) AS mean_speed_px_s,
       median(speed_px_s) FILTER (behaviour = 'walking') AS walking_speed_px_s,
       avg(gait_score) AS gait_mean,
       count(gait_score) AS gait_n,
       median(area_px) FILTER (behaviour = 'standing') AS area_px,
       sum(confidence * w) FILTER (confidence IS NOT NULL)
         / sum(w) FILTER (confidence IS NOT NULL) AS link_confidence
FROM o JOIN pens p USING (animal_id, day) JOIN per_behaviour b USING (animal_id, day)
GROUP BY o.animal_id, o.day
ORDER BY o.animal_id, o.day
"""


def _lying_bouts(con: duckdb.DuckDBPyConnection, lying: list[str]) -> pa.Table:
    """Return (animal_id, day, lying_bouts, lying_bout_mean_min) from the observation rows."""
    con.sql(
        "CREATE OR REPLACE TEMP TABLE groups_n AS SELECT animal_id, day, "
        "row_number() OVER (ORDER BY animal_id, day) - 1 AS g "
        "FROM (SELECT DISTINCT animal_id, day FROM o)"
    )
    rows = con.sql(
        "SELECT g, epoch(t) AS ts, list_contains($lying, behaviour) AS lying, w "
        "FROM o JOIN groups_n USING (animal_id, day) ORDER BY g, ts",
        params={"lying": lying},
    ).to_arrow_table()
    keys = con.sql("SELECT animal_id, day FROM groups_n ORDER BY g").to_arrow_table()
    group = rows.column("g").to_numpy()
    ts = rows.column("ts").to_numpy()
    w = rows.column("w").to_numpy()
    is_lying = np.asarray(rows.column("lying").to_numpy(zero_copy_only=False), dtype=bool)
    lying_rows = np.flatnonzero(is_lying)
    counts = np.zeros(keys.num_rows, dtype=np.int32)
    total_s = np.zeros(keys.num_rows)
    if len(lying_rows):
        # Consecutive lying rows of one animal-day stay in one bout unless the rows between
        # them (all non-lying) stand for a minute or more, or tracking lost the animal for
        # long: a minute, not a row count, so thinned old rows give the same bouts.
        not_lying_s = np.cumsum(np.where(is_lying, 0.0, w))
        nxt, prev = lying_rows[1:], lying_rows[:-1]
        breaks = (
            (group[nxt] != group[prev])
            | (not_lying_s[nxt - 1] - not_lying_s[prev] >= BOUT_BREAK_S)
            | (ts[nxt] - ts[prev] > BOUT_GAP_S)
        )
        first = np.concatenate([[0], np.flatnonzero(breaks) + 1])
        last = np.concatenate([np.flatnonzero(breaks), [len(lying_rows) - 1]])
        start_row, end_row = lying_rows[first], lying_rows[last]
        length = ts[end_row] - ts[start_row] + w[end_row]
        real = length >= BOUT_MIN_S
        np.add.at(counts, group[start_row[real]], 1)
        np.add.at(total_s, group[start_row[real]], length[real])
    mean_min = total_s / np.maximum(counts, 1) / 60
    return keys.append_column("lying_bouts", pa.array(counts, pa.int32())).append_column(
        "lying_bout_mean_min", pa.array(mean_min, pa.float32(), mask=counts == 0)
    )


def _assemble(figures: pa.Table, bouts: pa.Table, keyframes: pa.Table) -> pa.Table:
    schema = days_schema()
    con = duckdb.connect()
    con.register("f", figures)
    con.register("b", bouts)
    con.register("k", keyframes)
    joined = con.sql(
        "SELECT f.*, coalesce(b.lying_bouts, 0) AS lying_bouts, b.lying_bout_mean_min, "
        "coalesce(k.keyframes, []) AS keyframes FROM f "
        "LEFT JOIN b USING (animal_id, day) LEFT JOIN k USING (animal_id, day) "
        "ORDER BY f.animal_id, f.day"
    ).to_arrow_table()
    n = joined.num_rows
    columns = {
        "anomaly_z": pa.nulls(n, pa.float32()),
        "anomalies": pa.array([[]] * n, pa.list_(pa.string())),
        "derived_at": pa.array([datetime.now(UTC)] * n, schema.field("derived_at").type),
    }
    arrays = [
        columns[f.name] if f.name in columns else joined.column(f.name).cast(f.type) for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _read_rows(record: Record, start: date, end: date) -> pa.Table:
    where = f"day >= date '{start.isoformat()}' AND day <= date '{end.isoformat()}'"
    rows = record.dataset("days").to_table(filter=where)
    return rows.cast(days_schema())


def _with_eating_share(days: pa.Table) -> pa.Table:
    eating = pc.divide(
        pc.cast(days.column("eating_min"), pa.float64()),
        pc.cast(days.column("observed_min"), pa.float64()),
    )
    return days.append_column("eating_share", eating)
