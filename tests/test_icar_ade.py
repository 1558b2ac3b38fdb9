"""ICAR ADE: importing event collections (validated, all or nothing, idempotent), exporting
the events in force with attention events and gait scores, and the round trip between two
records. Every exported file is validated against the ADE snapshot's JSON Schemas."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from typer.testing import CliRunner

from conftest import service_settings
from herdrecord.api.keys import add_key
from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.events.ade.importer import AdeDocument, import_ade_documents, import_ade_files
from herdrecord.events.ade.mapping import split_note
from herdrecord.events.ade.validation import SCHEMA_DIR
from herdrecord.events.rules import EventsRejected, parse_event
from herdrecord.events.store import add_events, correct_event, current_events
from herdrecord.query.export import ExportFilters
from herdrecord.query.icar_export import AdeExport, export_icar_ade
from herdrecord.server import create_app
from herdrecord.store.record import Record, create_record
from herdrecord.store.schema import animals_schema, days_schema

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
runner = CliRunner()
EXAMPLE = Path(__file__).parent / "data" / "icar_ade_example.json"
SNAPSHOT = Path(__file__).resolve().parents[2] / "shared" / "standards" / "icar-ade"
EID = "276000312312345"  # the cow of the hand-written example, by its ISO 11784 EID
COMPARED = (
    "animal_id",
    "kind",
    "at",
    "scale",
    "value",
    "unit",
    "code",
    "result",
    "withdrawal_days",
    "note",
    "author",
)


def add_animal(
    record: Record, animal_id: str, species: str, *, tag_id: str | None = None, pen: str = "pen-1"
) -> None:
    """Append one animal row, as enrolment would."""
    row = {
        "animal_id": animal_id,
        "display_name": None,
        "tag_id": tag_id,
        "species": species,
        "sex": "female",
        "birth_date": None,
        "pen_id": pen,
        "status": "active",
        "merged_into": None,
        "provisional": False,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    record.table("animals").add(pa.Table.from_pylist([row], schema=animals_schema()))


def add_herd(record: Record) -> None:
    add_animal(record, "cow-1", "cattle", tag_id=EID)
    add_animal(record, "cow-2", "cattle", pen="pen-2")
    for n in range(1, 5):
        add_animal(record, f"sow-{n}", "pig", tag_id=f"DE-{n:04d}")


def add_day(record: Record, animal_id: str, day: date, **values: Any) -> None:
    """Append one animal-day with the given figures (the rest empty or zero)."""
    schema = days_schema()
    row: dict[str, Any] = {}
    for field in schema:
        if field.nullable:
            row[field.name] = None
        elif pa.types.is_list(field.type):
            row[field.name] = []
        elif pa.types.is_string(field.type):
            row[field.name] = "pen-1"
        elif pa.types.is_timestamp(field.type):
            row[field.name] = NOW
        else:
            row[field.name] = 0
    row |= {"animal_id": animal_id, "day": day, **values}
    record.table("days").add(pa.Table.from_pylist([row], schema=schema))


def native_events() -> list[dict[str, Any]]:
    """Return events of every kind ADE has a resource for, as a person would enter them."""
    at = datetime(2026, 11, 1, 8, tzinfo=UTC)
    vet = {"author": "vet A. Jansen"}
    return [
        {"animal_id": "sow-3", "kind": "birth", "at": at - timedelta(days=200), **vet},
        {"animal_id": "sow-1", "kind": "lameness", "scale": "0-3", "value": 2, "at": at, **vet},
        {"animal_id": "cow-2", "kind": "lameness", "scale": "1-5", "value": 4, "at": at, **vet},
        {"animal_id": "sow-1", "kind": "diagnosis", "code": "PRRS", "at": at, **vet},
        {
            "animal_id": "sow-1",
            "kind": "treatment",
            "code": "Draxxin",
            "value": 2.5,
            "unit": "ml",
            "withdrawal_days": 28,
            "at": at + timedelta(hours=1),
            "note": "left hind",
            **vet,
        },
        {
            "animal_id": "sow-2",
            "kind": "treatment",
            "code": "Baytril",
            "value": 5,
            "unit": "mg/kg",
            "withdrawal_days": 2.5,
            "at": at,
            **vet,
        },
        {"animal_id": "sow-2", "kind": "weight", "value": 182.5, "at": at, "author": "scale 3"},
        {"animal_id": "sow-2", "kind": "oestrus", "at": at - timedelta(days=120), **vet},
        {
            "animal_id": "sow-2",
            "kind": "insemination",
            "code": "AI",
            "at": at - timedelta(days=119),
            **vet,
        },
        {
            "animal_id": "sow-2",
            "kind": "pregnancy_check",
            "result": "positive",
            "code": "Echography",
            "at": at - timedelta(days=90),
            **vet,
        },
        {
            "animal_id": "sow-2",
            "kind": "farrowing",
            "value": 14,
            "result": "12",
            "at": at - timedelta(days=5),
            **vet,
        },
        {"animal_id": "cow-2", "kind": "calving", "value": 1, "result": "1", "at": at, **vet},
        {"animal_id": "cow-2", "kind": "abortion", "at": at - timedelta(days=300), **vet},
        {"animal_id": "sow-1", "kind": "move", "code": "pen-7", "at": at, **vet},
        {"animal_id": "sow-3", "kind": "death", "code": "bitten by a pen mate", "at": at, **vet},
        {"animal_id": "sow-4", "kind": "sale", "code": "buyer 17", "at": at, **vet},
        {"animal_id": "cow-2", "kind": "note", "note": "calm cow", "at": at, **vet},
    ]


def in_force(record: Record) -> list[tuple[Any, ...]]:
    """Return what each event in force says (ids, keys and record times aside)."""
    rows = current_events(record).to_pylist()
    return sorted(
        tuple(
            float(np.float32(row[c])) if c == "withdrawal_days" and row[c] is not None else row[c]
            for c in COMPARED
        )
        for row in rows
    )


def ade_registry(folder: Path) -> Registry[Any]:
    """Return a registry of the snapshot's schemas, each under its path below `folder`."""
    registry: Registry[Any] = Registry()
    for path in folder.glob("*/*.json"):
        resource = Resource.from_contents(
            json.loads(path.read_text()), default_specification=DRAFT202012
        )
        registry = registry.with_resource(path.resolve().as_uri(), resource)
    return registry


def snapshot() -> Path:
    """Return the ADE snapshot of the standards folder, or the copy herdrecord bundles."""
    return SNAPSHOT if SNAPSHOT.is_dir() else SCHEMA_DIR


def assert_valid(folder: Path) -> int:
    """Validate every file of an ADE export against its collection schema; return members."""
    schemas = snapshot()
    registry = ade_registry(schemas)
    members = 0
    for path in sorted(folder.glob("*.json")):
        uri = (schemas / "collections" / path.name).resolve().as_uri()
        validator = Draft202012Validator(
            {"$ref": uri}, registry=registry, format_checker=FormatChecker()
        )
        document = json.loads(path.read_text())
        errors = [
            f"{path.name}: {e.json_path}: {e.message}" for e in validator.iter_errors(document)
        ]
        assert errors == []
        for member in document["member"]:  # each as its own resource, as an importer reads it
            resource = (schemas / "resources" / f"{member['resourceType']}Resource.json").resolve()
            one = Draft202012Validator(
                {"$ref": resource.as_uri()}, registry=registry, format_checker=FormatChecker()
            )
            assert list(one.iter_errors(member)) == []
            members += 1
    return members


@pytest.fixture
def herd(record: Record) -> Record:
    add_herd(record)
    return record


def test_the_bundled_schemas_are_the_snapshot_unchanged() -> None:
    if not SNAPSHOT.is_dir():
        pytest.skip("the standards snapshot is not beside this checkout")
    for path in sorted(SNAPSHOT.glob("*/*.json")):
        if path.parent.name == "well-known":
            continue
        bundled = SCHEMA_DIR / path.parent.name / path.name
        assert bundled.read_bytes() == path.read_bytes(), path.name


def test_a_hand_written_ade_file_imports_with_what_does_not_map_kept(herd: Record) -> None:
    imported = import_ade_files(herd, [EXAMPLE], now=NOW)

    assert len(imported.recorded.event_ids) == 4 and imported.recorded.duplicates == ()
    events = {row["kind"]: row for row in current_events(herd).to_pylist()}
    assert set(events) == {"diagnosis", "treatment", "oestrus", "insemination"}
    assert {row["animal_id"] for row in events.values()} == {"cow-1"}  # named by its EID
    diagnosis = events["diagnosis"]
    assert diagnosis["code"] == "Digital dermatitis"
    assert diagnosis["author"] == "J. de Vries, DVM"
    assert diagnosis["event_key"] == "ade:nl.example.vetsoftware dx-2026-0311"
    remark, payload = split_note(diagnosis["note"])
    assert remark == "Walks on the toe, rear left."
    assert payload["diagnoses"][0]["diagnosisCode"] == {
        "scheme": "icar.disease",
        "id": "1.06.07.07.04.",
    }
    treatment = events["treatment"]
    assert (treatment["code"], treatment["value"], treatment["unit"]) == (
        "Engemycine 10%",
        20,
        "ml",
    )
    assert treatment["withdrawal_days"] == 28  # the longest: meat, to 18 December
    assert [w["productType"] for w in split_note(treatment["note"])[1]["withdrawals"]] == [
        "Milk",
        "Meat",
    ]
    assert events["insemination"]["code"] == "AI"
    assert split_note(events["insemination"]["note"])[1]["sireOfficialName"] == "Peak Altaspring"
    assert split_note(events["oestrus"]["note"])[1]["certainty"] == "InHeat"
    assert events["oestrus"]["author"] == "com.example.collars"  # no responsible: its source


def test_importing_the_same_file_again_stores_nothing_new(herd: Record) -> None:
    first = import_ade_files(herd, [EXAMPLE], now=NOW)
    again = import_ade_files(herd, [EXAMPLE], now=NOW)

    assert again.recorded.event_ids == ()
    assert [d.event_id for d in again.recorded.duplicates] == list(first.recorded.event_ids)
    assert all(d.by_key for d in again.recorded.duplicates)
    assert current_events(herd).num_rows == 4


def test_a_malformed_file_names_every_bad_event_by_its_path_and_stores_nothing(
    herd: Record,
) -> None:
    cow = {"scheme": "eu.animalId", "id": EID}
    at = "2026-11-20T09:00:00Z"
    members = [
        {"resourceType": "icarDiagnosisEvent", "animal": cow, "eventDateTime": "yesterday"},
        {"resourceType": "icarTreatmentEvent", "animal": {"id": EID}, "eventDateTime": at},
        {"resourceType": "icarMilkingVisitEvent", "animal": cow, "eventDateTime": at},
        {
            "resourceType": "icarReproPregnancyCheckEvent",
            "animal": cow,
            "eventDateTime": at,
            "result": "Unknown",
        },
        {
            "resourceType": "icarWeightEvent",
            "animal": {"scheme": "eu.animalId", "id": "999"},
            "eventDateTime": at,
            "weight": {"measurement": 600},
        },
        {"resourceType": "icarReproHeatEvent", "animal": cow, "eventDateTime": at},
        {
            "resourceType": "icarWeightEvent",
            "animal": cow,
            "eventDateTime": at,
            "weight": {"measurement": 5000},
        },
    ]
    data = json.dumps({"member": members}).encode()

    with pytest.raises(EventsRejected) as caught:
        import_ade_documents(herd, [AdeDocument("bad.json", data)], now=NOW)

    problems = caught.value.problems
    assert problems[0] == "bad.json: $.member[0].eventDateTime: 'yesterday' is not a 'date-time'"
    assert problems[1] == "bad.json: $.member[1].animal: 'scheme' is a required property"
    assert problems[2].startswith(
        "bad.json: $.member[2].resourceType: 'icarMilkingVisitEvent' is not an ADE event"
    )
    assert problems[3].startswith("bad.json: $.member[3].result: give Pregnant, Multiple or Empty")
    assert problems[4].startswith("bad.json: $.member[4].animal: no animal in the record carries")
    assert problems[5].startswith("bad.json: $.member[6]: value: weight 5000 kg is outside")
    assert len(problems) == 6  # the heat at $.member[5] is fine
    assert current_events(herd).num_rows == 0


def test_a_file_that_is_not_a_collection_is_refused_in_one_line(herd: Record) -> None:
    with pytest.raises(EventsRejected) as caught:
        import_ade_documents(herd, [AdeDocument("x.json", b"[1, 2]")])
    assert caught.value.problems == ['x.json: $: give an ADE collection, {"member": [...]}']
    with pytest.raises(EventsRejected, match="not JSON"):
        import_ade_documents(herd, [AdeDocument("x.json", b"{nope")])


def make_source(tmp_path: Path, settings: Settings) -> Record:
    """Return a record with native events of every kind, the example's, and flagged days."""
    record = create_record(str(tmp_path / "farm-a"), settings)
    add_herd(record)
    add_events(record, [parse_event(e) for e in native_events()], now=NOW)
    import_ade_files(record, [EXAMPLE], now=NOW)
    frames = [{"device_id": "cam-2", "track_id": "t1", "t": NOW}]
    add_day(
        record,
        "sow-1",
        date(2026, 11, 2),
        anomalies=["lying_up", "gait_up"],
        anomaly_z=3.4,
        gait_mean=0.82,
        gait_n=40,
        keyframes=frames * 2 + [{"device_id": "cam-9", "track_id": "t2", "t": NOW}],
    )
    add_day(record, "sow-2", date(2026, 11, 2), anomalies=["eating_down"], anomaly_z=2.6)
    add_day(record, "sow-2", date(2026, 11, 3), gait_mean=0.1, gait_n=12)
    return record


def export(record: Record, out: Path) -> tuple[AdeExport, dict[str, list[dict[str, Any]]]]:
    result = export_icar_ade(record, out)
    members = {p.name: json.loads(p.read_text())["member"] for p in sorted(out.glob("*.json"))}
    return result, members


def test_every_exported_file_validates_against_the_ade_schemas(
    tmp_path: Path, settings: Settings
) -> None:
    record = make_source(tmp_path, settings)

    result, members = export(record, tmp_path / "ade")

    assert assert_valid(tmp_path / "ade") == result.events == 24  # 20 events, 4 derived
    assert result.left_out == {"note": 1}
    assert set(result.files) == {
        "icarAttentionEventCollection.json",
        "icarConformationScoreEventCollection.json",
        "icarDiagnosisEventCollection.json",
        "icarMovementArrivalEventCollection.json",
        "icarMovementBirthEventCollection.json",
        "icarMovementDeathEventCollection.json",
        "icarMovementDepartureEventCollection.json",
        "icarReproAbortionEventCollection.json",
        "icarReproHeatEventCollection.json",
        "icarReproInseminationEventCollection.json",
        "icarReproParturitionEventCollection.json",
        "icarReproPregnancyCheckEventCollection.json",
        "icarTreatmentEventCollection.json",
        "icarWeightEventCollection.json",
    }
    attention = {a["animal"]["id"]: a for a in members["icarAttentionEventCollection.json"]}
    sick = attention["sow-1"]
    assert (sick["category"], sick["causes"], sick["priority"]) == (
        "Health",
        ["Lameness", "LyingTooLong"],
        "Urgent",
    )
    assert sick["device"] == {"identifier": {"scheme": "org.herdrecord.device", "id": "cam-2"}}
    assert sick["eventDateTime"] == "2026-11-02T00:00:00Z"
    quiet = attention["sow-2"]
    assert (quiet["category"], quiet["causes"], quiet["priority"]) == (
        "Behaviour",
        ["EatingLess"],
        "Normal",
    )
    scores = members["icarConformationScoreEventCollection.json"]
    by_method: dict[str, list[dict[str, Any]]] = {}
    for score in scores:
        by_method.setdefault(score["method"], []).append(score)
    assert sorted((s["score"], s["traitLabel"]["id"]) for s in by_method["Manual"]) == [
        (2, "0-3"),
        (4, "1-5"),
    ]
    assert sorted(s["score"] for s in by_method["Automated"]) == [0.1, 0.82]
    assert all(s["traitScored"] == "Locomotion" for s in scores)
    treatments = {t["medicine"]["name"]: t for t in members["icarTreatmentEventCollection.json"]}
    assert treatments["Draxxin"]["withdrawals"] == [{"endDate": "2026-11-29T09:00:00Z"}]
    assert treatments["Draxxin"]["dose"] == {"doseQuantity": 2.5, "doseUnits": "MLT"}
    assert treatments["Baytril"]["herdrecord"] == {"unit": "mg/kg"}  # no UN/CEFACT code
    diagnosis = next(
        d for d in members["icarDiagnosisEventCollection.json"] if d["animal"]["id"] == "cow-1"
    )
    assert diagnosis["meta"]["source"] == "nl.example.vetsoftware"  # provenance kept
    assert diagnosis["diagnoses"][0]["diagnosisCode"]["scheme"] == "icar.disease"
    assert diagnosis["remark"] == "Walks on the toe, rear left."


def test_export_then_import_into_a_fresh_record_gives_the_same_events(
    tmp_path: Path, settings: Settings
) -> None:
    source = make_source(tmp_path, settings)
    _, exported = export(source, tmp_path / "ade")
    fresh = create_record(str(tmp_path / "farm-b"), settings)
    add_herd(fresh)

    imported = import_ade_files(fresh, [tmp_path / "ade"], now=NOW)

    assert imported.derived == 4 and imported.files == 14
    expected = [e for e in in_force(source) if e[1] != "note"]
    assert in_force(fresh) == expected
    again = import_ade_files(fresh, [tmp_path / "ade"], now=NOW)
    assert again.recorded.event_ids == () and len(again.recorded.duplicates) == 20
    # The second record exports the same ADE events (their ids and sources included).
    _, reexported = export(fresh, tmp_path / "ade-b")

    def comparable(files: dict[str, list[dict[str, Any]]]) -> list[Any]:
        return sorted(
            json.dumps({k: v for k, v in m.items() if k != "meta"} | {"src": m["meta"]["source"]})
            for name, ms in files.items()
            for m in ms
            if name != "icarAttentionEventCollection.json" and m.get("method") != "Automated"
        )

    assert comparable(reexported) == comparable(exported)


def test_a_records_own_export_read_back_is_all_duplicates(
    tmp_path: Path, settings: Settings
) -> None:
    record = make_source(tmp_path, settings)
    moved = current_events(record, kind="move").to_pylist()[0]
    export(record, tmp_path / "ade")
    fixed = parse_event({**{k: moved[k] for k in COMPARED}, "code": "pen-8"})
    correct_event(record, moved["event_id"], fixed, now=NOW)
    before = in_force(record)

    again = import_ade_files(record, [tmp_path / "ade"], now=NOW)

    assert again.recorded.event_ids == () and len(again.recorded.duplicates) == 20
    withdrawn = [d for d in again.recorded.duplicates if d.withdrawn]
    assert [d.event_id for d in withdrawn] == [moved["event_id"]]
    assert in_force(record) == before


def test_a_corrected_import_exports_what_the_correction_says(tmp_path: Path, herd: Record) -> None:
    import_ade_files(herd, [EXAMPLE], now=NOW)
    treatment = current_events(herd, kind="treatment").to_pylist()[0]
    fixed = parse_event(
        {
            **{k: treatment[k] for k in COMPARED},
            "value": 25.0,
            "withdrawal_days": 30,
            "author": "vet B",
        }
    )
    correct_event(herd, treatment["event_id"], fixed, now=NOW)

    _, members = export(herd, tmp_path / "ade")

    item = members["icarTreatmentEventCollection.json"][0]
    assert item["dose"]["doseQuantity"] == 25.0
    assert item["withdrawals"] == [{"endDate": "2026-12-20T09:10:00Z"}]
    assert item["batches"][0]["identifier"] == "B2026-118"  # the rest of the payload stays
    assert assert_valid(tmp_path / "ade") == 4


def test_the_cli_exports_ade_and_imports_it_into_another_record(
    tmp_path: Path, settings: Settings
) -> None:
    source = make_source(tmp_path, settings)
    out = tmp_path / "ade"

    result = runner.invoke(
        app, ["export", str(source.path), "--out", str(out), "--format", "icar-ade"]
    )

    assert result.exit_code == 0, result.output
    assert f"exported 24 ADE events to {out}" in result.output
    assert "left out (no ADE resource): 1 note" in result.output
    assert assert_valid(out) == 24
    fresh = create_record(str(tmp_path / "farm-b"), settings)
    add_herd(fresh)
    result = runner.invoke(app, ["event", "import", str(fresh.path), str(out)])
    assert result.exit_code == 0, result.output
    assert f"stored 20 events from {out}" in result.output
    assert "4 attention events and gait scores left out" in result.output
    again = runner.invoke(app, ["event", "import", str(fresh.path), str(EXAMPLE)])
    assert again.exit_code == 0, again.output
    assert f"stored 0 events from {EXAMPLE}; 4 duplicates" in again.output
    assert "icar_ade_example.json: $.member[0]" in again.output


def test_the_cli_reads_ade_from_standard_input_and_names_bad_paths(herd: Record) -> None:
    bad = {"member": [{"resourceType": "icarReproHeatEvent", "eventDateTime": "2026-11-20"}]}

    result = runner.invoke(app, ["event", "import", str(herd.path), "-"], input=json.dumps(bad))

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "-: $.member[0]: 'animal' is a required property" in result.output
    assert "-: $.member[0].eventDateTime: '2026-11-20' is not a 'date-time'" in result.output
    assert current_events(herd).num_rows == 0
    result = runner.invoke(app, ["event", "import", str(herd.path), "-"], input=EXAMPLE.read_text())
    assert result.exit_code == 0 and "stored 4 events from standard input" in result.output


def test_the_service_exports_ade_as_a_zip(tmp_path: Path, settings: Settings) -> None:
    record = make_source(tmp_path, settings)
    key = add_key(record, "analyst-1", "analyst", "test")[1]
    headers = {"Authorization": f"Bearer {key}"}

    with TestClient(create_app(service_settings(record.path))) as client:
        response = client.get("/v1/export?format=icar-ade", headers=headers)
        refused = client.get("/v1/export?format=icar-ade&keyframes=true", headers=headers)

    assert response.status_code == 200, response.text
    assert int(response.headers["content-length"]) == len(response.content)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    out = tmp_path / "unzipped"
    archive.extractall(out)
    assert len(archive.namelist()) == 14
    assert assert_valid(out) == 24
    assert refused.status_code == 422


def test_an_ade_export_takes_the_parquet_exports_filters(
    tmp_path: Path, settings: Settings
) -> None:
    record = make_source(tmp_path, settings)
    window = ExportFilters(first_day=date(2026, 11, 2), last_day=date(2026, 11, 2))

    _, one = export_icar_ade_members(record, tmp_path / "one", ExportFilters(animal_ids=("sow-1",)))
    _, day = export_icar_ade_members(record, tmp_path / "day", window)

    assert {m["animal"]["id"] for ms in one.values() for m in ms} == {"sow-1"}
    assert len(one["icarAttentionEventCollection.json"]) == 1
    assert {m["eventDateTime"][:10] for ms in day.values() for m in ms} == {"2026-11-02"}
    assert set(day) == {
        "icarAttentionEventCollection.json",
        "icarConformationScoreEventCollection.json",
    }


def test_an_import_past_the_event_limit_is_refused_whole(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), Settings(max_event_rows=3))
    add_herd(record)

    with pytest.raises(InvalidInput, match="more than 3 events in one import"):
        import_ade_files(record, [EXAMPLE], now=NOW)
    assert current_events(record).num_rows == 0


def export_icar_ade_members(
    record: Record, out: Path, filters: ExportFilters
) -> tuple[AdeExport, dict[str, list[dict[str, Any]]]]:
    result = export_icar_ade(record, out, filters)
    members = {p.name: json.loads(p.read_text())["member"] for p in sorted(out.glob("*.json"))}
    return result, members
