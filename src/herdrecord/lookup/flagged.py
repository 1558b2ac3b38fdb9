"""The animal-days carrying an anomaly flag: which animal, which day, and what stood out."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.store.record import Record

FLAGGED_COLUMNS = ("animal_id", "day", "pen_id", "observed_min", "anomalies", "anomaly_z")


def flagged_days(record: Record) -> pa.Table:
    """Return the animal-days with at least one anomaly flag, by day then animal: the flags
    (`lying_up`, `walking_speed_down` ...), the largest deviation in σ and minutes observed."""
    days = record.dataset("days").to_table(columns=list(FLAGGED_COLUMNS))
    flagged = days.filter(pc.greater(pc.list_value_length(days.column("anomalies")), 0))
    return flagged.sort_by([("day", "ascending"), ("animal_id", "ascending")])
