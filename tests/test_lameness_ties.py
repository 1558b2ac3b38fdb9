"""The lameness query with tied worst scores: the first tied score with a baseline behind
it is the case, not the earliest score of all (issue 21, item 7)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from herdrecord.events.rules import parse_event
from herdrecord.events.store import add_events
from herdrecord.query.cohorts import run_query
from herdrecord.store.record import Record
from herdrecord.store.schema import animals_schema, days_schema

FIRST = date(2026, 10, 1)
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def add_animal(record: Record, animal_id: str) -> None:
    row = {name: None for name in animals_schema().names}
    row |= {"animal_id": animal_id, "species": "pig", "pen_id": "pen-1", "status": "active"}
    row |= {"provisional": False, "created_at": datetime(2026, 9, 1, tzinfo=UTC)}
    record.table("animals").add(pa.Table.from_pylist([row], schema=animals_schema()))


def add_days(record: Record, animal_id: str, lying: dict[date, float]) -> None:
    """Whole observed days (24 h) with the given lying share."""
    rows = []
    for day, share in sorted(lying.items()):
        row = {name: None for name in days_schema().names}
        row |= {"animal_id": animal_id, "day": day, "pen_id": "pen-1", "n_tracklets": 10}
        row |= {"observed_min": 1440.0, "behaviour_min": [], "lying_min": 1440.0 * share}
        row |= {"lying_share": share, "activity_index": 0.2, "distance_px": 0.0}
        row |= {"mean_speed_px_s": 0.0, "lying_bouts": 1, "gait_n": 0, "keyframes": []}
        row |= {"anomalies": [], "derived_at": NOW}
        rows.append(row)
    record.table("days").add(pa.Table.from_pylist(rows, schema=record.table("days").schema))


def score(record: Record, animal_id: str, on: date, value: int) -> None:
    event = parse_event(
        {
            "animal_id": animal_id,
            "kind": "lameness",
            "at": f"{on}T09:00Z",
            "value": value,
            "scale": "0-3",
            "author": "vet",
        }
    )
    add_events(record, [event], now=NOW)


def test_a_tied_worst_score_without_a_baseline_gives_way_to_the_next(record: Record) -> None:
    add_animal(record, "A1")
    # Observed from 1 October: sound (lying 40 %) to the 14th, lame (60 %) from the 15th.
    days = {FIRST + timedelta(days=i): 0.4 if i < 14 else 0.6 for i in range(20)}
    add_days(record, "A1", days)
    # Two scores of 2, the worst: the first on the 2nd has no days before it to compare with.
    score(record, "A1", date(2026, 10, 2), 2)
    score(record, "A1", date(2026, 10, 16), 2)
    score(record, "A1", date(2026, 10, 10), 1)  # lower: never the case
    rows = run_query(record, "lameness", {}).to_pylist()
    assert [(r["animal_id"], r["score"]) for r in rows] == [("A1", 2)]
    assert rows[0]["scored_at"] == datetime(2026, 10, 16, 9, tzinfo=UTC)
    assert rows[0]["window_from"] == date(2026, 10, 14)
    assert rows[0]["baseline_value"] == 0.4 and rows[0]["window_value"] == 0.533


def test_of_tied_scores_with_baselines_the_earliest_is_the_case(record: Record) -> None:
    add_animal(record, "A2")
    days = {FIRST + timedelta(days=i): 0.4 if i < 14 else 0.6 for i in range(30)}
    add_days(record, "A2", days)
    score(record, "A2", date(2026, 10, 16), 3)
    score(record, "A2", date(2026, 10, 28), 3)  # as bad, later: the episode began before
    rows = run_query(record, "lameness", {}).to_pylist()
    assert [r["scored_at"] for r in rows] == [datetime(2026, 10, 16, 9, tzinfo=UTC)]


def test_a_baseline_too_thin_on_whole_days_does_not_count(record: Record) -> None:
    add_animal(record, "A3")
    # Only two days before the first tied score: below the query's three baseline days.
    days = {date(2026, 10, 3): 0.4, date(2026, 10, 4): 0.4}
    days |= {date(2026, 10, 6) + timedelta(days=i): 0.4 if i < 10 else 0.6 for i in range(14)}
    add_days(record, "A3", days)
    score(record, "A3", date(2026, 10, 7), 2)
    score(record, "A3", date(2026, 10, 18), 2)
    rows = run_query(record, "lameness", {}).to_pylist()
    assert [r["scored_at"] for r in rows] == [datetime(2026, 10, 18, 9, tzinfo=UTC)]
