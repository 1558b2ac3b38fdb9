"""One animal's timeline as people read it: its days with the scale weights of each day, its
events, weekly summaries of long periods, and the record-wide summary of days.

The command line and the docs render these; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from herdrecord.days.derive import calibration_and_weighings, read_days_calibrated
from herdrecord.days.weights import MIN_WEIGHINGS, WeightCalibration
from herdrecord.errors import InvalidInput, UnknownAnimal
from herdrecord.events.store import current_events
from herdrecord.events.window import utc_window
from herdrecord.lookup.animals import tag_confirmations
from herdrecord.store.record import Record
from herdrecord.store.sql import sql_literal


@dataclass(frozen=True)
class CalibrationStatus:
    """The record's area -> weight calibration, or how far it is from having one."""

    calibration: WeightCalibration | None
    weighings: int  # scale weights matched to a day with a standing area
    needed: int = MIN_WEIGHINGS  # weighings a calibration takes


@dataclass(frozen=True)
class AnimalTimeline:
    """One animal's days and events over a period."""

    animal_id: str
    display_name: str | None
    pen_id: str | None
    status: str
    provisional: bool
    start: date | None  # the period asked for; None: open
    end: date | None
    days: pa.Table  # `read_days` rows plus `scale_weight_kg`, sorted by day
    events: pa.Table  # events in force within the period, sorted by `at`
    calibration: CalibrationStatus
    behaviours: tuple[str, ...]  # the record's behaviour vocabulary, in its order
    coverage_floor_h: float  # days observed for less are partial (HERDRECORD_DAY_COVERAGE_FLOOR_H)

    @property
    def title(self) -> str:
        """Return the figure's title: id, name, pen and the days it covers."""
        name = f" · {self.display_name}" if self.display_name else ""
        pen = f", {self.pen_id}" if self.pen_id else ""
        if self.days.num_rows == 0:
            return f"{self.animal_id}{name}{pen}"
        span = self.days.column("day")
        return f"{self.animal_id}{name}{pen}: {span[0].as_py()} to {span[-1].as_py()}"


@dataclass(frozen=True)
class DaysSummary:
    """What the record's days table holds."""

    animals: int
    animal_days: int
    calendar_days: int
    first_day: date | None
    last_day: date | None
    flagged_animal_days: int  # days carrying at least one anomaly flag
    flagged_animals: int
    calibration: CalibrationStatus


def calibration_status(record: Record) -> CalibrationStatus:
    """Return the record's current weight calibration and the weighings behind it."""
    calibration, weighings = calibration_and_weighings(record)
    return CalibrationStatus(calibration, weighings)


def animal_timeline(
    record: Record, animal_id: str, start: date | None = None, end: date | None = None
) -> AnimalTimeline:
    """Return the animal's days and events within [start, end] (UTC days, either open)."""
    if start is not None and end is not None and start > end:
        raise InvalidInput(f"the period starts on {start} after it ends on {end}; swap them")
    window = utc_window(start, end)
    animal = _animal(record, animal_id)
    events = current_events(record, animal_id, start=window[0], end=window[1])
    calibration = calibration_status(record)  # once: the days' weights and the header
    days = read_days_calibrated(record, calibration.calibration, animal_id, start, end)
    return AnimalTimeline(
        animal_id=animal_id,
        display_name=animal["display_name"],
        pen_id=animal["pen_id"],
        status=animal["status"],
        # A tag read that confirmed the animal ends its provisional enrolment, as in lookup.
        provisional=bool(animal["provisional"]) and not tag_confirmations(record, animal_id),
        start=start,
        end=end,
        days=_with_scale_weights(days, events),
        events=events,
        calibration=calibration,
        behaviours=record.behaviours,
        coverage_floor_h=record.settings.day_coverage_floor_h,
    )


def _animal(record: Record, animal_id: str) -> dict[str, Any]:
    rows = (
        record.dataset("animals")
        .to_table(filter=f"animal_id = {sql_literal(animal_id)}")
        .to_pylist()
    )
    if not rows:
        raise UnknownAnimal(animal_id)
    row: dict[str, Any] = rows[0]
    if row["status"] == "merged":
        raise InvalidInput(
            f"{animal_id} was merged into {row['merged_into']}; its days and events are "
            "shown under that id"
        )
    return row


def _with_scale_weights(days: pa.Table, events: pa.Table) -> pa.Table:
    """Return `days` with `scale_weight_kg`: the day's last scale weight (UTC day), else null."""
    last: dict[date, tuple[datetime, float]] = {}
    for row in events.select(["kind", "at", "value"]).to_pylist():
        if row["kind"] != "weight" or row["value"] is None:
            continue
        day = row["at"].astimezone(UTC).date()
        if day not in last or row["at"] >= last[day][0]:
            last[day] = (row["at"], row["value"])
    kg = [last[d][1] if d in last else None for d in days.column("day").to_pylist()]
    return days.append_column(
        pa.field("scale_weight_kg", pa.float32(), metadata={"doc": "scale weight that day, kg"}),
        pa.array(kg, pa.float32()),
    )


def weekly_summary(days: pa.Table) -> pa.Table:
    """Return one row per ISO week (Monday first) of an animal's days (`AnimalTimeline.days`):
    daily means of the day figures, time-weighted where the days differ in observed time."""
    con = duckdb.connect()
    con.register(
        "d",
        days.select(
            [
                "day",
                "pen_id",
                "observed_min",
                "lying_min",
                "activity_index",
                "eating_min",
                "walking_speed_px_s",
                "lying_bouts",
                "gait_mean",
                "gait_n",
                "weight_est_kg",
                "scale_weight_kg",
                "link_confidence",
                "keyframes",
                "anomalies",
            ]
        ),
    )
    return con.sql(_WEEKLY_SQL).to_arrow_table()


_WEEKLY_SQL = """
SELECT CAST(date_trunc('week', day) AS DATE) AS week,
       count(*)::INT AS days,
       mode(pen_id) AS pen_id,
       CAST(avg(observed_min) AS FLOAT) AS observed_min,
       CAST(sum(lying_min) / sum(observed_min) AS FLOAT) AS lying_share,
       CAST(sum(activity_index * observed_min) / sum(observed_min) AS FLOAT) AS activity_index,
       CAST(avg(eating_min) AS FLOAT) AS eating_min,
       CAST(median(walking_speed_px_s) AS FLOAT) AS walking_speed_px_s,
       CAST(avg(lying_bouts) AS FLOAT) AS lying_bouts,
       CAST(sum(gait_mean * gait_n) / nullif(sum(gait_n) FILTER (gait_mean IS NOT NULL), 0)
            AS FLOAT) AS gait_mean,
       CAST(avg(weight_est_kg) AS FLOAT) AS weight_est_kg,
       CAST(arg_max(scale_weight_kg, day) FILTER (scale_weight_kg IS NOT NULL) AS FLOAT)
         AS scale_weight_kg,
       CAST(avg(link_confidence) AS FLOAT) AS link_confidence,
       sum(len(keyframes))::INT AS keyframes,
       count(*) FILTER (len(anomalies) > 0)::INT AS flagged_days,
       coalesce(list_sort(list_distinct(flatten(list(anomalies)))), []) AS anomalies
FROM d GROUP BY 1 ORDER BY 1
"""


def days_summary(record: Record) -> DaysSummary:
    """Return how many animals and days the record's days table holds, and how many flagged."""
    days = record.dataset("days").to_table(columns=["animal_id", "day", "anomalies"])
    con = duckdb.connect()
    con.register("d", days)
    row = con.sql(
        "SELECT count(DISTINCT animal_id), count(*), count(DISTINCT day), min(day), max(day), "
        "count(*) FILTER (len(anomalies) > 0), "
        "count(DISTINCT animal_id) FILTER (len(anomalies) > 0) FROM d"
    ).fetchall()[0]
    return DaysSummary(
        animals=int(row[0]),
        animal_days=int(row[1]),
        calendar_days=int(row[2]),
        first_day=row[3],
        last_day=row[4],
        flagged_animal_days=int(row[5]),
        flagged_animals=int(row[6]),
        calibration=calibration_status(record),
    )


def plot_animal_timeline(timeline: AnimalTimeline, out: Path) -> Path:
    """Draw the timeline's figure as a PNG at `out`; return `out`."""
    if not out.parent.is_dir():
        raise InvalidInput(f"cannot write {out}: folder {out.parent} does not exist")
    # matplotlib costs a quarter of a second to import: only a figure pays it.
    from herdrecord.lookup.plot import plot_timeline

    return plot_timeline(
        timeline.days,
        timeline.events,
        out,
        title=timeline.title,
        behaviours=timeline.behaviours,
        coverage_floor_h=timeline.coverage_floor_h,
    )
