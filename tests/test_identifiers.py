"""Identifiers as ICAR ADE names animals: (scheme, id) pairs holding over days, added and
listed through the CLI, naming animals in events, CSV rows and ADE files, and the ear tags
of older records carried into that shape by migration 0007."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import service_settings
from herdrecord.api.keys import add_key
from herdrecord.cli import app
from herdrecord.errors import InvalidInput
from herdrecord.events.ade.importer import AdeDocument, import_ade_documents
from herdrecord.events.identifiers import (
    TAG_SCHEME,
    add_identifier,
    animal_by_identifier,
    identifiers,
)
from herdrecord.events.rules import EventsRejected
from herdrecord.events.store import current_events
from herdrecord.server import create_app
from herdrecord.store.migrations import applied
from herdrecord.store.record import Record, create_record, migrate_record, open_record
from herdrecord.store.schema import META_SCHEMA_VERSION, animals_schema

runner = CliRunner()
EID = "276000312312345"


def _add_animal(
    record: Record, animal_id: str, tag: str | None = None, status: str = "active"
) -> None:
    row = {
        "animal_id": animal_id,
        "display_name": None,
        "tag_id": tag,
        "species": "pig",
        "sex": "female",
        "birth_date": None,
        "pen_id": "pen-1",
        "status": status,
        "merged_into": "A1" if status == "merged" else None,
        "provisional": False,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    record.table("animals").add(pa.Table.from_pylist([row], schema=animals_schema()))


@pytest.fixture
def herd(tmp_path: Path) -> Record:
    record = create_record(str(tmp_path / "herd"), service_settings(tmp_path))
    _add_animal(record, "A1", tag="TAG-1")
    _add_animal(record, "A2")
    _add_animal(record, "A3", tag="TAG-3", status="merged")
    return record


def _cli(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_identifiers_are_added_listed_and_refused_through_the_cli(herd: Record) -> None:
    path = str(herd.path)
    code, out = _cli(["identifiers", "add", path, "A1", "eu.animalId", EID, "--by", "vet"])
    assert code == 0 and f"A1 now carries eu.animalId {EID}" in out
    code, out = _cli(["identifiers", "add", path, "A1", "eu.animalId", EID, "--by", "vet"])
    assert code == 0 and "already carries" in out, "a repeat stores nothing"
    # Another animal may not carry it over the same days; nothing is stored.
    code, out = _cli(["identifiers", "add", path, "A2", "eu.animalId", EID, "--by", "vet"])
    assert code != 0 and f"eu.animalId '{EID}' is A1's from the start to now" in out
    assert len(out.strip().splitlines()) == 1, "one line, no traceback"
    code, out = _cli(["identifiers", "add", path, "A2", "eu.animalId", "12345", "--by", "vet"])
    assert code != 0 and "give 15 digits" in out
    code, out = _cli(["identifiers", "add", path, "A2", "bad scheme!", "1", "--by", "vet"])
    assert code != 0 and "identifier scheme" in out
    code, out = _cli(["identifiers", "add", path, "A3", "managementTag", "7", "--by", "vet"])
    assert code != 0 and "merged" in out
    # The farm re-uses its own number once the first pig has gone.
    for animal, days in (("A1", ["--to", "2026-03-31"]), ("A2", ["--from", "2026-04-01"])):
        code, out = _cli(
            ["identifiers", "add", path, animal, "managementTag", "1042", *days, "--by", "vet"]
        )
        assert code == 0, out
    code, out = _cli(["identifiers", "list", path, "--format", "json"])
    assert code == 0
    listed = {(r["animal_id"], r["scheme"], r["id"]): r for r in json.loads(out)}
    assert set(listed) == {
        ("A1", TAG_SCHEME, "TAG-1"),
        ("A1", "eu.animalId", EID),
        ("A1", "managementTag", "1042"),
        ("A2", "managementTag", "1042"),
    }, "a merged animal's tag is not listed"
    assert listed[("A1", "managementTag", "1042")]["valid_to"] == "2026-03-31"
    assert listed[("A2", "managementTag", "1042")]["valid_from"] == "2026-04-01"
    assert len(identifiers(open_record(path), "A1")) == 3


def test_an_identifier_names_the_animal_it_named_on_the_events_day(
    herd: Record, tmp_path: Path
) -> None:
    add_identifier(herd, "A1", "managementTag", "1042", None, date(2026, 3, 31), "vet")
    add_identifier(herd, "A2", "managementTag", "1042", date(2026, 4, 1), None, "vet")
    assert animal_by_identifier(herd, "managementTag", "1042", date(2026, 2, 1)) == "A1"
    assert animal_by_identifier(herd, "managementTag", "1042", date(2026, 5, 1)) == "A2"
    with pytest.raises(InvalidInput, match="no animal in the record carries managementTag '9'"):
        animal_by_identifier(herd, "managementTag", "9")
    path = str(herd.path)
    for at in ("2026-02-01T08:00Z", "2026-05-01T08:00Z"):
        code, out = _cli(
            [
                "event",
                "add",
                path,
                "--kind",
                "weight",
                "--value",
                "80",
                "--unit",
                "kg",
                "--identifier",
                "managementTag:1042",
                "--at",
                at,
                "--author",
                "scale",
            ]
        )
        assert code == 0, out
    by_day = {r["at"].date().isoformat(): r["animal_id"] for r in current_events(herd).to_pylist()}
    assert by_day == {"2026-02-01": "A1", "2026-05-01": "A2"}
    code, out = _cli(
        ["event", "add", path, "--kind", "weight", "--value", "80", "--identifier", "1042"]
    )
    assert code != 0 and "give SCHEME:ID" in out
    # CSV rows name animals by identifier too; an unknown one refuses the file, row named.
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "identifier_scheme,identifier,kind,at,value,unit,author\n"
        "managementTag,1042,weight,2026-02-02T08:00Z,81,kg,scale\n"
        "managementTag,1042,weight,2026-05-02T08:00Z,82,kg,scale\n"
    )
    code, out = _cli(["event", "import", path, str(csv_file)])
    assert code == 0, out
    named = {r["value"]: r["animal_id"] for r in current_events(herd).to_pylist()}
    assert named[81.0] == "A1" and named[82.0] == "A2"
    before = current_events(herd).num_rows
    csv_file.write_text(
        "identifier_scheme,identifier,kind,at,value,unit,author\n"
        "managementTag,1042,weight,2026-02-03T08:00Z,83,kg,scale\n"
        "managementTag,77,weight,2026-02-03T08:00Z,84,kg,scale\n"
    )
    code, out = _cli(["event", "import", path, str(csv_file)])
    assert code != 0 and "row 2" in out and "managementTag '77'" in out
    assert current_events(herd).num_rows == before, "all or nothing"


def test_ade_events_name_animals_by_any_identifier(herd: Record) -> None:
    add_identifier(herd, "A2", "eu.animalId", EID, None, None, "registry")
    member = {
        "resourceType": "icarWeightEvent",
        "animal": {"scheme": "eu.animalId", "id": EID},
        "eventDateTime": "2026-11-20T09:00:00Z",
        "weight": {"measurement": 95, "units": "KGM"},
    }
    tagged = {**member, "animal": {"scheme": TAG_SCHEME, "id": "TAG-1"}}
    data = json.dumps({"member": [member, tagged]}).encode()
    import_ade_documents(herd, [AdeDocument("w.json", data)])
    assert sorted(r["animal_id"] for r in current_events(herd).to_pylist()) == ["A1", "A2"]
    unknown = {**member, "animal": {"scheme": "eu.animalId", "id": "276000000000001"}}
    with pytest.raises(EventsRejected) as caught:
        import_ade_documents(
            herd, [AdeDocument("u.json", json.dumps({"member": [unknown]}).encode())]
        )
    assert caught.value.problems[0].startswith(
        "u.json: $.member[0].animal: no animal in the record carries eu.animalId"
    )


def test_migration_0007_carries_each_ear_tag_into_identifiers(herd: Record, tmp_path: Path) -> None:
    # Make the record as schema 6 left it: no identifiers table, the log ending at 6.
    herd.db.drop_table("identifiers")
    herd.table("migrations").delete("version = 7")
    herd.set_metadata(META_SCHEMA_VERSION, 6)
    settings = service_settings(tmp_path)
    assert [m.version for m in migrate_record(str(herd.path), settings)] == [7]
    migrated = open_record(str(herd.path), settings)
    rows = migrated.table("identifiers").to_arrow().to_pylist()
    assert [(r["animal_id"], r["scheme"], r["id"], r["valid_from"]) for r in rows] == [
        ("A1", TAG_SCHEME, "TAG-1", None)
    ], "the merged animal's tag stays behind"
    assert [m.version for m in applied(migrated.db)][-1] == 7
    assert migrate_record(str(herd.path), settings) == []
    assert migrated.table("identifiers").count_rows() == 1, "run again, copied once"


def test_the_service_lists_and_records_identifiers(herd: Record) -> None:
    vet = add_key(herd, "vet-1", "vet", "test")[1]
    analyst = add_key(herd, "analyst-1", "analyst", "test")[1]
    as_vet = {"Authorization": f"Bearer {vet}"}
    body = {"scheme": "eu.animalId", "id": EID, "valid_from": "2026-01-01"}
    with TestClient(create_app(service_settings(herd.path))) as client:
        added = client.post("/v1/animals/A1/identifiers", json=body, headers=as_vet)
        again = client.post("/v1/animals/A1/identifiers", json=body, headers=as_vet)
        taken = client.post("/v1/animals/A2/identifiers", json=body, headers=as_vet)
        bad = client.post("/v1/animals/A2/identifiers", json={**body, "id": "12"}, headers=as_vet)
        extra = client.post(
            "/v1/animals/A2/identifiers", json={**body, "owner": "x"}, headers=as_vet
        )
        refused = client.post(
            "/v1/animals/A2/identifiers",
            json={**body, "scheme": "managementTag"},
            headers={"Authorization": f"Bearer {analyst}"},
        )
        listed = client.get(
            "/v1/animals/A1/identifiers", headers={"Authorization": f"Bearer {analyst}"}
        )
        missing = client.get("/v1/animals/NOPE/identifiers", headers=as_vet)
    assert added.status_code == 201 and added.json()["added"] is True
    assert again.status_code == 201 and again.json()["added"] is False
    assert taken.status_code == 422 and "A1's from 2026-01-01" in taken.text
    assert bad.status_code == 422 and "15 digits" in bad.text
    assert extra.status_code == 422, "unknown fields are refused"
    assert refused.status_code == 403
    assert missing.status_code == 404
    pairs = {(i["scheme"], i["id"], i["recorded_by"]) for i in listed.json()["identifiers"]}
    assert pairs == {(TAG_SCHEME, "TAG-1", "linking"), ("eu.animalId", EID, "vet-1")}
    assert [i.animal_id for i in identifiers(herd, "A2")] == [], "nothing stored for A2"


def test_a_merged_animals_identifiers_name_the_animal_it_was_merged_into(herd: Record) -> None:
    # A3 was merged into A1 (the fixture): what the farm named A3 by now names A1.
    herd.table("identifiers").add(
        pa.table(
            {
                "animal_id": ["A3"],
                "scheme": ["managementTag"],
                "id": ["77"],
                "valid_from": pa.nulls(1, pa.date32()),
                "valid_to": pa.nulls(1, pa.date32()),
                "recorded_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
                "recorded_by": ["vet"],
            },
            schema=herd.table("identifiers").schema,
        )
    )
    assert animal_by_identifier(herd, "managementTag", "77") == "A1"
    with pytest.raises(InvalidInput, match="TAG-3"):
        animal_by_identifier(herd, TAG_SCHEME, "TAG-3")  # its ear tag stays behind


def test_identifiers_are_a_view_for_sql_and_a_table_of_the_export(
    herd: Record, tmp_path: Path
) -> None:
    add_identifier(herd, "A2", "eu.animalId", EID, date(2026, 2, 1), None, "registry")
    path = str(herd.path)
    result = runner.invoke(
        app,
        [
            "sql",
            path,
            "SELECT animal_id, scheme, id, valid_from FROM identifiers ORDER BY 1",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["animal_id"], r["scheme"], r["id"]) for r in rows] == [
        ("A1", TAG_SCHEME, "TAG-1"),
        ("A2", "eu.animalId", EID),
    ], "the tag linking bound, and the registry's id; the merged animal's tag left out"
    code, out = _cli(["export", path, "--out", str(tmp_path / "out")])
    assert code == 0, out
    exported = pq.read_table(tmp_path / "out" / "identifiers" / "identifiers.parquet")
    assert exported.num_rows == 2
    assert exported.schema.field("valid_from").metadata[b"doc"].startswith(b"first day")
