"""Events under careless and hostile input: a file imported twice, a request sent twice,
far-off dates in windows, implausible times, oversize files; and events by ear tag, from
standard input, with help that names every column."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import service_settings
from herdrecord.api.keys import add_key
from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.events.csv_import import CSV_COLUMNS, import_events_csv
from herdrecord.events.rules import EventsRejected, parse_event
from herdrecord.events.store import add_events, amended_event, correct_event, current_events
from herdrecord.server import create_app
from herdrecord.store.record import Record, create_record, open_record
from herdrecord.store.schema import animals_schema, days_schema

runner = CliRunner()
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
AT = "2026-11-21T06:00:00Z"
CSV = (
    "tag_id,kind,at,value,scale,code,author,unit,withdrawal_days\n"
    f"TAG-0001,lameness,{AT},2,0-3,,vet,,\n"
    f"TAG-0002,weight,{AT},118.5,,,scale,,\n"
    f"TAG-0002,treatment,{AT},2.5,,Draxxin,vet,ml,28\n"
)


def add_animal(
    record: Record,
    animal_id: str,
    tag_id: str | None = None,
    *,
    birth_date: date | None = None,
    created_at: datetime = datetime(2026, 9, 1, tzinfo=UTC),
) -> None:
    row = {
        "animal_id": animal_id,
        "display_name": None,
        "tag_id": tag_id,
        "species": "pig",
        "sex": "female",
        "birth_date": birth_date,
        "pen_id": "pen-1",
        "status": "active",
        "merged_into": None,
        "provisional": False,
        "created_at": created_at,
    }
    record.table("animals").add(pa.Table.from_pylist([row], schema=animals_schema()))


@pytest.fixture
def herd(record: Record) -> Record:
    """A1 (TAG-0001) and A2 (TAG-0002), enrolled 2026-09-01, no birth dates."""
    add_animal(record, "A1", "TAG-0001")
    add_animal(record, "A2", "TAG-0002")
    return record


def stored_rows(record: Record) -> int:
    return open_record(str(record.path)).table("events").count_rows()


def event(kind: str = "weight", animal_id: str = "A1", at: str = AT, **fields: object) -> object:
    return parse_event({"animal_id": animal_id, "kind": kind, "at": at, "author": "vet", **fields})


# Idempotence


def test_a_csv_imported_twice_stores_its_events_once(herd: Record, tmp_path: Path) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(CSV)
    first = runner.invoke(app, ["event", "import", str(herd.path), str(csv_file)])
    assert first.exit_code == 0, first.output
    assert f"stored 3 events from {csv_file}" in first.output
    again = runner.invoke(app, ["event", "import", str(herd.path), str(csv_file)])
    assert again.exit_code == 0, again.output
    assert "stored 0 events" in again.output
    assert "3 duplicates of events already recorded, not stored (rows 1, 2, 3)" in again.output
    assert stored_rows(herd) == 3


def test_a_reimport_never_brings_back_what_was_corrected(herd: Record, tmp_path: Path) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(CSV)
    [score, *_] = import_events_csv(herd, csv_file, now=NOW).event_ids
    correct_event(herd, score, amended_event(herd, score, {"value": 3}), now=NOW)
    again = import_events_csv(herd, csv_file, now=NOW)
    assert again.event_ids == ()
    assert [d.withdrawn for d in again.duplicates] == [True, False, False]
    assert "(since corrected or retracted); not stored" in again.duplicates[0].describe()
    lameness = current_events(herd, kind="lameness").column("value").to_pylist()
    assert lameness == [3]


def test_repeats_within_one_call_and_new_events_beside_repeats(herd: Record) -> None:
    first = add_events(herd, [event(value=100), event(value=100)], now=NOW)
    assert len(first.event_ids) == 1
    assert [(d.position, d.event_id) for d in first.duplicates] == [(1, first.event_ids[0])]
    mixed = add_events(herd, [event(value=100), event(value=101)], now=NOW)
    assert len(mixed.event_ids) == 1 and mixed.duplicates[0].position == 0
    # the author is not part of what happened: another person's copy is the same event
    other = add_events(herd, [event(value=101).model_copy(update={"author": "farmer"})], now=NOW)
    assert other.event_ids == ()
    assert stored_rows(herd) == 2


def test_an_event_key_names_the_event(herd: Record) -> None:
    keyed = add_events(herd, [event(value=100, event_key="scale-77")], now=NOW)
    # the same content under another key is another weighing: stored
    twin = add_events(herd, [event(value=100, event_key="scale-78")], now=NOW)
    assert len(keyed.event_ids) == 1 and len(twin.event_ids) == 1
    again = add_events(herd, [event(value=100, event_key="scale-77")], now=NOW)
    assert again.event_ids == () and again.duplicates[0].by_key
    assert again.duplicates[0].event_id == keyed.event_ids[0]
    with pytest.raises(EventsRejected, match=r"'scale-77' was given to event .* something else"):
        add_events(herd, [event(value=120, event_key="scale-77")], now=NOW)
    assert stored_rows(herd) == 2


def test_cli_event_add_twice_prints_the_first_id_and_says_so(herd: Record) -> None:
    args = ["event", "add", str(herd.path), "--tag", "TAG-0001", "--kind", "weight"]
    args += ["--value", "99", "--at", AT, "--author", "vet"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == first.stdout.strip()
    assert f"already recorded: a repeat of event {first.stdout.strip()}" in again.stderr
    assert stored_rows(herd) == 1
    rows = current_events(open_record(str(herd.path))).to_pylist()
    assert rows[0]["animal_id"] == "A1"


@pytest.fixture
def service(herd: Record) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = service_settings(herd.path)
    vet = add_key(herd, "vet-1", "vet", "test")[1]
    with TestClient(create_app(settings)) as client:
        yield client, {"Authorization": f"Bearer {vet}"}


def test_the_same_post_twice_stores_its_events_once(
    herd: Record, service: tuple[TestClient, dict[str, str]]
) -> None:
    client, vet = service
    body = {
        "events": [
            {"animal_id": "A1", "kind": "weight", "at": AT, "value": 100},
            {"animal_id": "A2", "kind": "diagnosis", "at": AT, "code": "PRRS", "event_key": "k1"},
        ]
    }
    first = client.post("/v1/events", json=body, headers=vet)
    assert first.status_code == 201, first.text
    assert len(first.json()["event_ids"]) == 2 and first.json()["duplicates"] == []
    again = client.post("/v1/events", json=body, headers=vet)
    assert again.status_code == 200, again.text
    assert again.json()["event_ids"] == []
    assert again.json()["duplicates"] == [
        {"index": 0, "event_id": first.json()["event_ids"][0], "by": "content", "withdrawn": False},
        {
            "index": 1,
            "event_id": first.json()["event_ids"][1],
            "by": "event_key",
            "withdrawn": False,
        },
    ]
    listed = client.get("/v1/events", headers=vet).json()
    assert listed["total"] == 2
    assert sorted(e["event_key"] or "" for e in listed["events"]) == ["", "k1"]
    assert stored_rows(herd) == 2


# Far-off days in windows


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_far_off_days_in_api_windows_are_422(
    herd: Record, service: tuple[TestClient, dict[str, str]], day: str
) -> None:
    client, vet = service
    admin = {"Authorization": f"Bearer {add_key(herd, 'admin-1', 'admin', 'test')[1]}"}
    for path, headers in (
        ("/v1/events", vet),
        ("/v1/animals/A1/timeline", vet),
        ("/v1/export", admin),
    ):
        for window in ({"from": day}, {"to": day}):
            response = client.get(path, params=window, headers=headers)
            assert response.status_code == 422, (path, window, response.text)
            assert "outside the days a record holds (1900-01-01 to 2199-12-31)" in response.text


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_far_off_days_in_cli_windows_are_one_line_and_exit_2(
    herd: Record, tmp_path: Path, day: str
) -> None:
    for args in (
        ["timeline", str(herd.path), "A1", "--to", day],
        ["timeline", str(herd.path), "A1", "--from", day],
        ["export", str(herd.path), "--out", str(tmp_path / "x"), "--to", day],
        ["export", str(herd.path), "--out", str(tmp_path / "y"), "--from", day],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "is outside the days a record holds" in lines[0], lines


@pytest.mark.parametrize("at", ["0001-01-01T00:00+01:00", "9999-12-31T23:30-05:00"])
def test_a_time_past_the_calendar_in_utc_is_a_problem_not_a_crash(herd: Record, at: str) -> None:
    with pytest.raises(EventsRejected, match="outside the years 1 to 9999 in UTC"):
        add_events(herd, [event(at=at, value=100)], now=NOW)


# Plausibility and size


def test_an_event_decades_before_the_animal_was_seen_is_refused(herd: Record) -> None:
    with pytest.raises(EventsRejected) as caught:
        add_events(herd, [event(at="1970-01-01T00:00Z", value=100)], now=NOW)
    assert caught.value.problems == [
        "at: 1970-01-01 is more than 3650 days before A1 was first seen (2026-09-01); check "
        "the year, or raise HERDRECORD_EVENT_DAYS_BEFORE_FIRST_SEEN to import older history"
    ]
    assert stored_rows(herd) == 0
    # a sow's farrowing two years before the cameras came is history, not a typo
    add_events(herd, [event("farrowing", at="2024-09-01T00:00Z", value=12)], now=NOW)
    assert stored_rows(herd) == 1


def test_first_seen_is_the_first_day_in_the_record(herd: Record, settings: Settings) -> None:
    add_animal(herd, "A5", created_at=datetime(2026, 11, 1, tzinfo=UTC))
    day = {name: None for name in days_schema().names}
    day |= {"animal_id": "A5", "day": date(2025, 3, 1), "pen_id": "pen-1", "n_tracklets": 1}
    day |= {"observed_min": 60.0, "behaviour_min": [], "lying_min": 0.0, "lying_share": 0.0}
    day |= {"activity_index": 0.0, "distance_px": 0.0, "mean_speed_px_s": 0.0}
    day |= {"lying_bouts": 0, "gait_n": 0, "keyframes": [], "anomalies": [], "derived_at": NOW}
    herd.table("days").add(pa.Table.from_pylist([day], schema=herd.table("days").schema))
    strict = open_record(str(herd.path), Settings(event_days_before_first_seen=10))
    with pytest.raises(EventsRejected, match=r"before A5 was first seen \(2025-03-01\)"):
        add_events(strict, [event(animal_id="A5", at="2025-02-01T00:00Z", value=9)], now=NOW)
    add_events(strict, [event(animal_id="A5", at="2025-02-25T00:00Z", value=9)], now=NOW)


def test_a_birth_date_bounds_the_past_instead(record: Record) -> None:
    add_animal(record, "A9", birth_date=date(2010, 5, 1))  # an old cow, born long before
    add_events(record, [event(animal_id="A9", at="2012-01-01T00:00Z", value=500)], now=NOW)
    with pytest.raises(EventsRejected, match="before A9's birth date 2010-05-01"):
        add_events(record, [event(animal_id="A9", at="2009-01-01T00:00Z", value=5)], now=NOW)


def test_a_csv_over_the_row_cap_is_refused_whole(herd: Record, tmp_path: Path) -> None:
    csv_file = tmp_path / "big.csv"
    rows = [f"A1,weight,2026-11-{1 + i % 20:02d}T06:00Z,{50 + i % 900},vet" for i in range(1001)]
    csv_file.write_text("animal_id,kind,at,value,author\n" + "\n".join(rows) + "\n")
    env = {"HERDRECORD_MAX_EVENT_ROWS": "1000"}
    result = runner.invoke(app, ["event", "import", str(herd.path), str(csv_file)], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"error: {csv_file}: more than 1,000 events (line 1002); one import takes at most "
        "1,000 (HERDRECORD_MAX_EVENT_ROWS): split the file"
    )
    assert stored_rows(herd) == 0
    csv_file.write_text("animal_id,kind,at,value,author\n" + "\n".join(rows[:1000]) + "\n")
    result = runner.invoke(app, ["event", "import", str(herd.path), str(csv_file)], env=env)
    assert result.exit_code == 0, result.output


# Events by tag, from standard input, and help


def test_event_import_reads_standard_input(herd: Record) -> None:
    result = runner.invoke(app, ["event", "import", str(herd.path), "-"], input=CSV)
    assert result.exit_code == 0, result.output
    assert "stored 3 events from standard input" in result.output
    assert stored_rows(herd) == 3


def test_event_list_and_correct_take_a_tag(herd: Record) -> None:
    add_events(herd, [event(animal_id="A2", value=80)], now=NOW)
    listed = runner.invoke(app, ["event", "list", str(herd.path), "--tag", "TAG-0002"])
    assert listed.exit_code == 0 and "1 events" in listed.output, listed.output
    [row] = current_events(herd).to_pylist()
    moved = runner.invoke(
        app, ["event", "correct", str(herd.path), row["event_id"], "--tag", "TAG-0001"]
    )
    assert moved.exit_code == 0, moved.output
    assert current_events(open_record(str(herd.path))).column("animal_id").to_pylist() == ["A1"]
    unknown = runner.invoke(app, ["event", "list", str(herd.path), "--tag", "TAG-9"])
    assert unknown.exit_code == 2
    assert "no animal in the record carries tag 'TAG-9'" in unknown.output
    both = runner.invoke(
        app,
        ["event", "add", str(herd.path), "--animal", "A1", "--tag", "TAG-0001", "--kind", "birth"],
    )
    assert both.exit_code == 2 and "by --animal or by --tag, not both" in both.output
    neither = runner.invoke(app, ["event", "add", str(herd.path), "--kind", "birth"])
    assert neither.exit_code == 2 and "name the animal: --animal ID or --tag TAG" in neither.output


def test_import_help_names_every_column() -> None:
    result = runner.invoke(app, ["event", "import", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for column in CSV_COLUMNS:
        assert column in text, column
    assert "tag_id (the ear tag)" in text and "- reads standard input" in text
    add_help = " ".join(runner.invoke(app, ["event", "add", "--help"]).output.split())
    assert "--tag" in add_help


def test_a_fresh_record_takes_events_by_tag(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), Settings(lock_timeout_s=0.5))
    add_animal(record, "P1", "DE-0101")
    result = runner.invoke(
        app,
        ["event", "add", str(record.path), "--tag", "DE-0101", "--kind", "note", "--note", "ok"],
    )
    assert result.exit_code == 0, result.output
    assert current_events(record).column("animal_id").to_pylist() == ["P1"]
