"""Health and production events: validation per kind, the record's checks, all-or-nothing
writes, corrections and retractions, effects on the animal, CSV import and the CLI."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from herdrecord.cli import app
from herdrecord.errors import (
    EventSuperseded,
    HerdrecordError,
    InvalidInput,
    UnknownAnimal,
    UnknownEvent,
)
from herdrecord.events.csv_import import import_events_csv
from herdrecord.events.rules import (
    BREEDING_KINDS,
    DEPARTURES,
    EVENT_KINDS,
    PARTURITIONS,
    EventInput,
    EventsRejected,
    parse_event,
)
from herdrecord.events.store import (
    add_events,
    amended_event,
    correct_event,
    current_events,
    event_history,
    retract_event,
)
from herdrecord.store.record import Record
from herdrecord.store.schema import animals_schema

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
AT = "2026-11-21T06:00:00Z"
runner = CliRunner()


def add_animal(
    record: Record,
    animal_id: str,
    *,
    status: str = "active",
    merged_into: str | None = None,
    birth_date: date | None = None,
    pen_id: str = "pen-1",
    tag_id: str | None = None,
) -> None:
    """Append one animal row, as enrolment would."""
    row = {
        "animal_id": animal_id,
        "display_name": None,
        "tag_id": tag_id,
        "species": "pig",
        "sex": "female",
        "birth_date": birth_date,
        "pen_id": pen_id,
        "status": status,
        "merged_into": merged_into,
        "provisional": False,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    record.table("animals").add(pa.Table.from_pylist([row], schema=animals_schema()))


def animal(record: Record, animal_id: str) -> dict[str, Any]:
    rows = record.table("animals").to_lance().to_table(filter=f"animal_id = '{animal_id}'")
    found: dict[str, Any] = rows.to_pylist()[0]
    return found


def event(kind: str, animal_id: str = "A1", at: str = AT, **fields: Any) -> EventInput:
    return parse_event({"animal_id": animal_id, "kind": kind, "at": at, "author": "vet", **fields})


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(EventsRejected) as caught:
        parse_event({"animal_id": "A1", "at": AT, "author": "vet", **data})
    return caught.value.problems


@pytest.fixture
def herd(record: Record) -> Record:
    """Return a record with sows A1 (born 2026-03-01) and A2, and A3 merged into A1."""
    add_animal(record, "A1", birth_date=date(2026, 3, 1))
    add_animal(record, "A2")
    add_animal(record, "A3", status="merged", merged_into="A1")
    return record


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"kind": "lameness", "value": 4, "scale": "0-3"},
            "value: lameness score 4 is outside scale 0-3",
        ),
        (
            {"kind": "lameness", "value": 0, "scale": "1-5"},
            "value: lameness score 0 is outside scale 1-5",
        ),
        (
            {"kind": "lameness", "value": 2.5, "scale": "1-5"},
            "value: lameness score 2.5 is not a whole number",
        ),
        ({"kind": "lameness", "value": 2}, "scale: required for lameness events: 0-3"),
        ({"kind": "lameness", "value": 2, "scale": "0-5"}, "scale: Input should be '0-3' or"),
        ({"kind": "diagnosis"}, "code: required for diagnosis events"),
        ({"kind": "treatment"}, "code: required for treatment events: the product given"),
        ({"kind": "treatment", "code": "Draxxin", "value": 0, "unit": "ml"}, "value: dose 0"),
        ({"kind": "treatment", "code": "Draxxin", "value": 2}, "unit: give the dose's unit"),
        ({"kind": "treatment", "code": "Draxxin", "unit": "ml"}, "unit: 'ml' given without"),
        ({"kind": "treatment", "code": "Pen", "withdrawal_days": -1}, "withdrawal_days: -1 days"),
        ({"kind": "weight", "value": 0}, "value: weight 0 kg is outside 0 < kg < 2000"),
        ({"kind": "weight", "value": 2500}, "value: weight 2500 kg is outside"),
        ({"kind": "weight", "value": 120, "unit": "lb"}, "unit: weight values are kept in kg"),
        ({"kind": "weight", "value": 120, "scale": "0-3"}, "scale: not used by weight events"),
        ({"kind": "weight", "value": "nan"}, "value: Input should be a finite number"),
        ({"kind": "pregnancy_check"}, "result: required for pregnancy_check events"),
        ({"kind": "pregnancy_check", "result": "maybe"}, "result: 'maybe': give positive or"),
        ({"kind": "farrowing", "value": 12.5}, "value: 12.5 head: give a whole number"),
        ({"kind": "farrowing", "value": 12, "result": "14"}, "result: born alive 14 is more than"),
        ({"kind": "calving", "value": 1, "result": "one"}, "result: born alive 'one': give a"),
        ({"kind": "weaning"}, "value: required for weaning events"),
        ({"kind": "move"}, "code: required for move events: the destination pen id"),
        ({"kind": "move", "code": "pen 2"}, "code: pen id 'pen 2': letters, digits"),
        ({"kind": "note"}, "note: required for note events"),
        ({"kind": "oestrus", "value": 1}, "value: not used by oestrus events"),
        ({"kind": "fever"}, "kind: Input should be 'lameness'"),
        ({"kind": "birth", "at": "2026-11-21T06:00"}, "at: 2026-11-21T06:00 has no time zone"),
        ({"kind": "birth", "at": "yesterday"}, "at: 'yesterday' is not a time"),
        ({"kind": "birth", "author": "  "}, "author: String should have at least 1 character"),
        ({"kind": "birth", "animal_id": "A 1"}, "animal_id: 'A 1': letters, digits"),
        ({"kind": "birth", "colour": "pink"}, "colour: not an event field"),
    ],
)
def test_each_kind_is_validated(data: dict[str, Any], problem: str) -> None:
    assert any(p.startswith(problem) for p in problems_of(data)), problems_of(data)


def test_every_problem_of_an_event_is_listed() -> None:
    found = problems_of({"kind": "lameness", "value": 9, "at": "2026-11-21 06:00", "code": "LH"})
    assert found == [
        "at: 2026-11-21 06:00 has no time zone; write e.g. 2026-11-21T06:00Z or +01:00",
        "scale: required for lameness events: 0-3 (pigs: Zinpro; dairy: AHDB) or 1-5 (Sprecher)",
        "code: not used by lameness events",
    ]


def test_valid_events_of_every_kind_parse_with_their_units() -> None:
    assert event("lameness", value=2, scale="0-3").unit == "score"
    assert event("weight", value="118.5").unit == "kg"
    assert event("treatment", code="Draxxin", value=2.5, unit="ml", withdrawal_days=28).value == 2.5
    assert event("pregnancy_check", result="Positive").result == "positive"
    farrowing = event("farrowing", value=14, result="012")
    assert (farrowing.value, farrowing.unit, farrowing.result) == (14, "head", "12")
    assert event("weaning", value=11).unit == "head"
    assert event("move", code="pen-2").code == "pen-2"
    for kind in ("oestrus", "abortion", "birth", "sale"):
        assert event(kind).unit is None
    assert event("insemination", code="AI").code == "AI"
    assert event("death", code="crushed").code == "crushed"
    assert event("diagnosis", code="PRRS", note="coughing, 3 pigs").note == "coughing, 3 pigs"
    assert event("note", note="moved feeder").kind == "note"
    with pytest.raises(Exception, match="frozen"):
        event("birth").kind = "death"  # type: ignore[misc]


def test_the_kind_groups_name_event_kinds() -> None:
    groups = (BREEDING_KINDS, DEPARTURES, PARTURITIONS)
    assert all(kind in EVENT_KINDS for group in groups for kind in group)


@pytest.mark.parametrize(
    ("animal_id", "at", "problem"),
    [
        ("A9", AT, "animal_id: no animal 'A9' in the record"),
        ("A3", AT, "animal_id: A3 was merged into A1; record the event on that id"),
        ("A1", "2026-11-21T12:06:00Z", "at: 2026-11-21 12:06Z is in the future"),
        ("A1", "2026-11-21T07:06:00-05:00", "at: 2026-11-21 12:06Z is in the future"),
        ("A1", "2026-02-28T23:00:00Z", "at: 2026-02-28 is before A1's birth date 2026-03-01"),
    ],
)
def test_the_record_checks_animal_and_time(
    herd: Record, animal_id: str, at: str, problem: str
) -> None:
    with pytest.raises(EventsRejected) as caught:
        add_events(herd, [event("weight", animal_id, at, value=100)], now=NOW)
    assert str(caught.value).startswith(f"event rejected, nothing stored: {problem}")
    assert herd.table("events").count_rows() == 0


def test_a_clock_a_little_ahead_is_tolerated(herd: Record) -> None:
    add_events(herd, [event("weight", at="2026-11-21T12:04:00Z", value=100)], now=NOW)
    assert herd.table("events").count_rows() == 1


def test_a_list_is_stored_whole_or_not_at_all(herd: Record) -> None:
    good = event("weight", value=101)
    with pytest.raises(EventsRejected) as caught:
        add_events(herd, [good, event("weight", "A9", value=99), good], now=NOW)
    assert caught.value.problems == [
        "events[1]: animal_id: no animal 'A9' in the record — `herdrecord animals` lists them"
    ]
    assert isinstance(caught.value, InvalidInput)
    assert herd.table("events").count_rows() == 0
    ids = add_events(
        herd,
        [good, event("lameness", "A2", "2026-11-21T08:00+01:00", value=1, scale="0-3")],
        now=NOW,
    ).event_ids
    assert len(set(ids)) == 2
    rows = herd.table("events").to_lance().to_table().sort_by("at").to_pylist()
    assert [r["event_id"] for r in rows] == list(ids)
    assert rows[1]["at"] == datetime(2026, 11, 21, 7, tzinfo=UTC)  # 08:00+01:00, kept in UTC
    assert rows[0]["recorded_at"] == NOW and rows[0]["supersedes"] is None
    assert rows[0]["retracted"] is False


def test_a_correction_replaces_the_event_and_keeps_the_old_row(herd: Record) -> None:
    [first] = add_events(herd, [event("weight", value=110)], now=NOW).event_ids
    fixed = amended_event(herd, first, {"value": "111.5", "author": "vet2"})
    second = correct_event(herd, first, fixed, now=NOW)
    in_force = current_events(herd, "A1")
    assert in_force.column("event_id").to_pylist() == [second]
    assert in_force.column("value").to_pylist() == [111.5]
    assert in_force.column("author").to_pylist() == ["vet2"]
    raw = herd.table("events").to_lance().to_table()
    assert raw.num_rows == 2
    assert event_history(herd, first).column("event_id").to_pylist() == [first, second]
    assert event_history(herd, second).column("supersedes").to_pylist() == [None, first]
    with pytest.raises(EventSuperseded, match=f"already corrected by {second}"):
        correct_event(herd, first, fixed, now=NOW)
    with pytest.raises(UnknownEvent, match="no event 'nope'"):
        correct_event(herd, "nope", fixed, now=NOW)
    with pytest.raises(EventsRejected, match="A3 was merged into A1"):
        correct_event(herd, second, amended_event(herd, second, {"animal_id": "A3"}), now=NOW)
    assert herd.table("events").count_rows() == 2
    retraction = retract_event(herd, second, "vet", "never weighed", now=NOW)
    chain = event_history(herd, second).column("event_id").to_pylist()
    assert chain == [first, second, retraction]
    with pytest.raises(EventSuperseded, match="already retracted"):
        amended_event(herd, second, {"value": 1})


def test_a_correction_of_kind_drops_the_fields_of_the_old_kind(herd: Record) -> None:
    [first] = add_events(
        herd, [event("lameness", value=2, scale="0-3", note="LH")], now=NOW
    ).event_ids
    fixed = amended_event(herd, first, {"kind": "weight", "value": 95})
    assert (fixed.kind, fixed.scale, fixed.unit, fixed.note) == ("weight", None, "kg", "LH")


def test_a_retraction_withdraws_the_event(herd: Record) -> None:
    [kept, wrong] = add_events(
        herd, [event("weight", value=110), event("diagnosis", code="PRRS")], now=NOW
    ).event_ids
    retraction = retract_event(herd, wrong, "vet", "wrong pig", now=NOW)
    assert current_events(herd).column("event_id").to_pylist() == [kept]
    raw = herd.table("events").to_lance().to_table()
    assert raw.num_rows == 3
    row = raw.filter(pa.compute.field("event_id") == retraction).to_pylist()[0]
    assert (row["retracted"], row["supersedes"], row["note"]) == (True, wrong, "wrong pig")
    with pytest.raises(EventSuperseded, match="already retracted"):
        retract_event(herd, wrong, "vet", "again", now=NOW)
    with pytest.raises(InvalidInput, match="is a retraction"):
        retract_event(herd, retraction, "vet", "undo", now=NOW)
    with pytest.raises(InvalidInput, match="needs an author and a reason"):
        retract_event(herd, kept, "vet", " ", now=NOW)


def test_moves_sales_deaths_and_births_update_the_animal(herd: Record) -> None:
    [move] = add_events(
        herd, [event("move", at="2026-11-20T06:00Z", code="pen-7")], now=NOW
    ).event_ids
    assert animal(herd, "A1")["pen_id"] == "pen-7"
    add_events(herd, [event("move", at="2026-11-01T06:00Z", code="pen-3")], now=NOW)
    assert animal(herd, "A1")["pen_id"] == "pen-7"  # a back-dated move is not the latest
    correct_event(herd, move, amended_event(herd, move, {"code": "pen-8"}), now=NOW)
    assert animal(herd, "A1")["pen_id"] == "pen-8"
    [sale] = add_events(herd, [event("sale", "A2", code="abattoir-1")], now=NOW).event_ids
    assert animal(herd, "A2")["status"] == "departed"
    retract_event(herd, sale, "vet", "sold the other one", now=NOW)
    assert animal(herd, "A2")["status"] == "active"
    add_events(herd, [event("death", "A2", code="crushed")], now=NOW)
    assert animal(herd, "A2")["status"] == "departed"
    add_events(herd, [event("birth", "A2", at="2026-04-02T03:00+05:00")], now=NOW)
    assert animal(herd, "A2")["birth_date"] == date(2026, 4, 1)
    assert animal(herd, "A3")["status"] == "merged"


def test_only_a_withdrawn_departure_reactivates_an_animal(herd: Record) -> None:
    add_animal(herd, "A4", status="departed")  # departed by review, with no event
    [weight] = add_events(herd, [event("weight", "A4", value=80)], now=NOW).event_ids
    retract_event(herd, weight, "vet", "wrong scale", now=NOW)
    assert animal(herd, "A4")["status"] == "departed"
    [death, sale] = add_events(
        herd, [event("death", "A2"), event("sale", "A2", at="2026-11-21T07:00Z")], now=NOW
    ).event_ids
    retract_event(herd, sale, "vet", "it died before", now=NOW)
    assert animal(herd, "A2")["status"] == "departed"  # the death still stands
    correct_event(herd, death, amended_event(herd, death, {"kind": "note", "note": "ill"}), now=NOW)
    assert animal(herd, "A2")["status"] == "active"
    assert add_events(herd, [], now=NOW).event_ids == ()


def test_current_events_filter_by_animal_time_and_kind(herd: Record) -> None:
    add_events(herd, [event("weight", "A2", value=90)], now=NOW)
    herd.table("events").add(  # recorded on A3 before it was merged into A1
        pa.Table.from_pylist(
            [
                {
                    "event_id": "old-1",
                    "animal_id": "A3",
                    "kind": "weight",
                    "at": datetime(2026, 11, 1, tzinfo=UTC),
                    "value": 80.0,
                    "author": "scale",
                    "recorded_at": datetime(2026, 11, 1, tzinfo=UTC),
                    "unit": "kg",
                }
            ],
            schema=herd.table("events").schema,
        )
    )
    add_events(
        herd,
        [
            event("weight", at="2026-11-20T06:00Z", value=100),
            event("diagnosis", at="2026-11-10T06:00Z", code="MHYO"),
        ],
        now=NOW,
    )
    mine = current_events(herd, "A1")
    assert mine.column("animal_id").to_pylist() == ["A3", "A1", "A1"]
    assert mine.column("kind").to_pylist() == ["weight", "diagnosis", "weight"]
    start, end = datetime(2026, 11, 10, 6, tzinfo=UTC), datetime(2026, 11, 20, 6, tzinfo=UTC)
    assert current_events(herd, "A1", start, end).column("code").to_pylist() == ["MHYO"]
    assert current_events(herd, kind="weight").num_rows == 3
    with pytest.raises(UnknownAnimal):
        current_events(herd, "A9")
    with pytest.raises(InvalidInput, match="no event kind 'wieght'"):
        current_events(herd, kind="wieght")
    with pytest.raises(InvalidInput, match="has no time zone"):
        current_events(herd, start=datetime(2026, 11, 1))


HEADER = "animal_id,kind,at,value,scale,code,note,author,unit,result,withdrawal_days\n"


def test_csv_import_stores_every_row(herd: Record, tmp_path: Path) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "\ufeff"  # Excel's CSV UTF-8 begins with a byte order mark
        + HEADER
        + f'A1,lameness,{AT},2,0-3,,"stiff, left hind",vet,,,\n'
        + "\n"
        + f"A2,treatment,{AT},2.5,,Draxxin,,vet,ml,,28\n"
        + f"A2,farrowing,{AT},14,,,,vet,,12,\n",
        encoding="utf-8",
    )
    ids = import_events_csv(herd, csv_file, now=NOW).event_ids
    assert len(ids) == 3
    rows = current_events(herd).to_pylist()
    assert rows[0]["note"] == "stiff, left hind" and rows[0]["code"] is None
    assert rows[1]["withdrawal_days"] == 28 and rows[1]["unit"] == "ml"
    assert (rows[2]["value"], rows[2]["result"], rows[2]["unit"]) == (14, "12", "head")


def test_csv_rows_may_name_animals_by_their_ear_tag(herd: Record, tmp_path: Path) -> None:
    add_animal(herd, "A4", tag_id="TAG-0004")
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "tag_id,animal_id,kind,at,value,author\n"
        + f"TAG-0004,,weight,{AT},101.5,scale\n"
        + f",A2,weight,{AT},99,scale\n"
    )
    import_events_csv(herd, csv_file, now=NOW)
    rows = current_events(herd, kind="weight").to_pylist()
    assert sorted((r["animal_id"], r["value"]) for r in rows) == [("A2", 99.0), ("A4", 101.5)]
    csv_file.write_text(f"tag_id,kind,at,value,author\nTAG-9999,weight,{AT},101.5,scale\n")
    with pytest.raises(EventsRejected, match="no animal in the record carries TAG-9999"):
        import_events_csv(herd, csv_file, now=NOW)
    csv_file.write_text(f"kind,at,value,author\nweight,{AT},101.5,scale\n")
    with pytest.raises(
        InvalidInput,
        match=r"lacks the column\(s\) animal_id \(or tag_id, or identifier_scheme and identifier\)",
    ):
        import_events_csv(herd, csv_file, now=NOW)


def test_a_csv_with_one_bad_row_stores_nothing_and_names_the_row(
    herd: Record, tmp_path: Path
) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        HEADER
        + f"A1,weight,{AT},120,,,,scale,,,\n"
        + "\n"
        + f"A1,lameness,{AT},4,0-3,,,vet,,,\n"
        + f"A9,weight,{AT},120,,,,scale,,,\n"
        + f"A1,weight,{AT},120,,,,scale,,\n"
    )
    with pytest.raises(EventsRejected) as caught:
        import_events_csv(herd, csv_file, now=NOW)
    assert caught.value.problems == [
        "row 2 (line 4): value: lameness score 4 is outside scale 0-3",
        "row 3 (line 5): animal_id: no animal 'A9' in the record — `herdrecord animals` lists them",
        "row 4 (line 6): 10 cells; the header has 11",
    ]
    assert str(caught.value).startswith("3 problems, nothing stored:\n  row 2 (line 4)")
    assert herd.table("events").count_rows() == 0


def test_a_csv_with_many_bad_rows_shows_the_first_fifty(herd: Record, tmp_path: Path) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text("animal_id,kind,at,author\n" + f"A1,weight,{AT},scale\n" * 70)
    with pytest.raises(EventsRejected) as caught:
        import_events_csv(herd, csv_file, now=NOW)
    assert len(caught.value.problems) == 70
    message = str(caught.value)
    assert "row 50 (line 51)" in message and "row 51 " not in message
    assert message.endswith("... and 20 more")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"animal_id,kind,at,author,weight\n", "unknown column(s) weight; the columns are"),
        (b"animal_id,kind,at\n", "the header lacks the column(s) author"),
        (b"animal_id,kind,at,author,at\n", "column(s) at appear more than once"),
        (b"animal_id,kind,at,author\n", "no events below the header"),
        (b"", "empty; the first row must name the columns"),
        (
            b"animal_id,kind,at,author\nA1,note,\xe9t\xe9,vet\n",
            "not UTF-8 text (line 2); save it as CSV UTF-8",
        ),
        (b"PK\x03\x04\x00\x00", "holds NUL bytes"),
        (b'animal_id,kind,at,author\nA1,note,"' + b"x" * 200_000 + b'",vet\n', "line 2: field"),
    ],
)
def test_unusable_csv_files_are_clear_errors(
    herd: Record, tmp_path: Path, content: bytes, problem: str
) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_bytes(content)
    with pytest.raises(InvalidInput, match=re.escape(problem)):
        import_events_csv(herd, csv_file, now=NOW)
    with pytest.raises(InvalidInput, match="no such file"):
        import_events_csv(herd, tmp_path / "missing.csv", now=NOW)


def test_errors_are_herdrecord_errors() -> None:
    for error in (EventsRejected, EventSuperseded, UnknownEvent):
        assert issubclass(error, HerdrecordError)


def test_cli_adds_imports_lists_corrects_and_retracts(herd: Record, tmp_path: Path) -> None:
    path = str(herd.path)
    result = runner.invoke(
        app,
        [
            "event",
            "add",
            path,
            "--animal",
            "A1",
            "--kind",
            "lameness",
            "--value",
            "2",
            "--scale",
            "0-3",
            "--at",
            "2026-11-21T06:00Z",
            "--author",
            "vet",
            "--note",
            "LH",
        ],
    )
    assert result.exit_code == 0, result.output
    event_id = result.output.strip()
    assert len(event_id) == 32
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        HEADER
        + f"A2,weight,{AT},118.5,,,,scale,,,\n"
        + f"A2,treatment,{AT},2.5,,Draxxin,,vet,ml,,28\n"
    )
    result = runner.invoke(app, ["event", "import", path, str(csv_file)])
    assert result.exit_code == 0, result.output
    assert "stored 2 events" in result.output
    result = runner.invoke(app, ["event", "list", path, "--animal", "A2", "--kind", "weight"])
    assert result.exit_code == 0, result.output
    assert "1 events" in result.output and "weight" in result.output and "A2" in result.output
    result = runner.invoke(app, ["event", "correct", path, event_id, "--value", "3"])
    assert result.exit_code == 0, result.output
    corrected = current_events(herd, "A1").to_pylist()[0]
    assert corrected["value"] == 3 and corrected["note"] == "LH" and corrected["supersedes"]
    result = runner.invoke(
        app, ["event", "retract", path, corrected["event_id"], "--reason", "wrong sow"]
    )
    assert result.exit_code == 0, result.output
    assert current_events(herd, "A1").num_rows == 0
    result = runner.invoke(app, ["event", "add", path, "--animal", "A1", "--kind", "birth"])
    assert result.exit_code == 0, result.output  # at defaults to now, author to the user


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--animal", "A1", "--kind", "lameness", "--value", "4", "--scale", "0-3"],
            "error: event rejected, nothing stored: value: lameness score 4 is outside scale 0-3",
        ),
        (
            ["--animal", "A9", "--kind", "birth"],
            "error: event rejected, nothing stored: animal_id: no animal 'A9'",
        ),
        (
            ["--animal", "A1", "--kind", "birth", "--at", "2026-11-21 06:00"],
            "error: event rejected, nothing stored: at: 2026-11-21 06:00 has no time zone",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(herd: Record, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["event", "add", str(herd.path), *args, "--author", "vet"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert herd.table("events").count_rows() == 0


def test_cli_import_of_a_bad_csv_lists_the_rows(herd: Record, tmp_path: Path) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(HEADER + f"A1,weight,{AT},0,,,,scale,,,\nA1,move,{AT},,,,,vet,,,\n")
    result = runner.invoke(app, ["event", "import", str(herd.path), str(csv_file)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "row 1 (line 2): value: weight 0 kg" in result.output
    assert "row 2 (line 3): code: required for move events" in result.output
    result = runner.invoke(app, ["event", "retract", str(herd.path), "nope", "--reason", "x"])
    assert result.exit_code == 2 and "no event 'nope'" in result.output


@pytest.mark.parametrize("command", ["add", "import", "list", "correct", "retract"])
def test_every_event_command_has_help(command: str) -> None:
    result = runner.invoke(app, ["event", command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_offsets_are_stored_as_utc() -> None:
    parsed = event("weight", at="2026-11-21T08:00:00+02:00", value=50)
    assert parsed.at == datetime(2026, 11, 21, 8, tzinfo=timezone(timedelta(hours=2)))
    assert parsed.at.astimezone(UTC) == datetime(2026, 11, 21, 6, tzinfo=UTC)
