"""Partial days: an animal-day observed for less than HERDRECORD_DAY_COVERAGE_FLOOR_H counts
for no cohort question (the charts that draw partial days are tested with the pages and the
figure)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from herdrecord.config import Settings
from herdrecord.query.cohorts import run_query
from herdrecord.store.record import Record, create_record
from test_plot import ANIMAL, make_days, make_events

SCORED_ON = 9  # day index of the lameness score: days 7-9 are its window, 0-6 the baseline
THIN_DAY = 7  # observed 2 h, and its few lying minutes read as a 95 % lying share


def _lame_pig(path: Path, floor_h: float) -> Record:
    """A record of one pig lying 30 % of its baseline days and 60 % of the days up to a
    lameness score of 2, one of those days observed for 2 hours only."""
    record = create_record(str(path), Settings(day_coverage_floor_h=floor_h))
    days = make_days(SCORED_ON + 1, weights=False).to_pylist()
    for i, day in enumerate(days):
        day["lying_share"] = 0.3 if i < SCORED_ON - 2 else 0.6
        if i == THIN_DAY:
            day.update(observed_min=120.0, lying_share=0.95)
    record.table("days").add(pa.Table.from_pylist(days, schema=make_days(1, weights=False).schema))
    record.table("events").add(make_events([(SCORED_ON, "lameness", 2.0, None)]))
    return record


@pytest.mark.parametrize(
    ("floor_h", "window_value"),
    [(6.0, 0.6), (1.0, round((0.95 + 0.6 + 0.6) / 3, 3))],
)
def test_cohort_queries_skip_days_under_the_coverage_floor(
    tmp_path: Path, floor_h: float, window_value: float
) -> None:
    record = _lame_pig(tmp_path / "herd", floor_h)
    rows = run_query(record, "lameness", {}).to_pylist()
    assert [r["animal_id"] for r in rows] == [ANIMAL]
    # At the 6 h floor the 2-hour day's 95 % is left out; with a 1 h floor it counts.
    assert rows[0]["baseline_value"] == 0.3
    assert rows[0]["window_value"] == window_value
