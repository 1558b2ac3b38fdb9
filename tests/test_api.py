"""The HTTP service through its ASGI client: roles, uploads, reads, events, review, queries,
SQL, export, keys and the one error shape; plus the writer's group commit and shutdown."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from conftest import make_batch, service_settings
from herdrecord.api.keys import add_key, list_keys
from herdrecord.api.writer import Writer, commit_uploads
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.contract.parquet import bulk_table_from_json
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.server import create_app
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import Record, create_record, open_record

ROLES = ("edge", "vet", "analyst", "admin")
SIM = SimulationConfig(
    animals=8,
    pens=2,
    days=3,
    seed=3,
    arrival_rate_per_day=0.0,
    lameness_rate_per_day=0.05,
    obs_interval_s=120.0,
)
runner = CliRunner()


@dataclass
class Service:
    """A served record, a client, and one key per role."""

    client: TestClient
    record: Record
    keys: dict[str, str]
    batches: list[dict[str, Any]]

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def make_keys(record: Record) -> dict[str, str]:
    return {role: add_key(record, f"{role}-1", role, "test")[1] for role in ROLES}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A small simulated barn uploaded through the API, a day each as JSON, gzip, Parquet."""
    folder = tmp_path_factory.mktemp("api")
    settings = service_settings(folder / "herd")
    record = create_record(str(folder / "herd"), settings)
    keys = make_keys(record)
    batches = simulate(SIM).batches
    by_day: dict[str, list[dict[str, Any]]] = {}
    for batch in batches:
        by_day.setdefault(str(batch["batch_id"]).split("/")[1][:10], []).append(batch)
    with TestClient(create_app(settings)) as client:
        service = Service(client, record, keys, batches)
        edge = service.as_("edge")
        first, second, third = sorted(by_day)
        for batch in by_day[first]:
            response = client.post("/v1/batches", json=batch, headers=edge)
            assert response.status_code == 201, response.text
        for batch in by_day[second]:
            body = gzip.compress(json.dumps(batch).encode())
            response = client.post(
                "/v1/batches",
                content=body,
                headers={**edge, "Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
            assert response.status_code == 201, response.text
        response = client.post(
            "/v1/batches",
            content=_parquet(by_day[third]),
            headers={**edge, "Content-Type": "application/vnd.apache.parquet"},
        )
        assert response.status_code == 201, response.text
        assert len(response.json()["batches"]) == len(by_day[third])
        linked = client.post("/v1/link", headers=edge)
        assert linked.status_code == 200, linked.text
        yield service


def _parquet(batches: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(bulk_table_from_json(batches), buffer)
    return buffer.getvalue()


def _ledger(record: Record) -> list[str]:
    return sorted(open_record(record.uri, record.settings).committed_batch_ids().to_pylist())


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"status", "code", "message", "problems"}
    assert error["status"] == status
    assert "\n" not in error["message"]
    return dict(error)


# --- who may do what ----------------------------------------------------------------------


def _endpoints(service: Service) -> list[tuple[str, str, dict[str, Any], set[str]]]:
    """(method, path, request kwargs, roles allowed) for every endpoint."""
    animal = service.client.get("/v1/animals", headers=service.as_("admin")).json()
    animal_id = animal["animals"][0]["animal_id"]
    readers, vets = {"vet", "analyst", "admin"}, {"vet", "admin"}
    analysts, edge = {"analyst", "admin"}, {"edge", "admin"}
    nothing = {"json": {}}
    return [
        ("POST", "/v1/batches", {"json": {"batch_id": "x"}}, edge),
        ("POST", "/v1/link", {}, edge),
        ("GET", "/v1/animals", {}, readers),
        ("GET", f"/v1/animals/{animal_id}", {}, readers),
        ("GET", f"/v1/animals/{animal_id}/timeline", {}, readers),
        ("GET", f"/v1/animals/{animal_id}/keyframes", {}, readers),
        ("GET", f"/v1/animals/{animal_id}/identifiers", {}, readers),
        ("POST", f"/v1/animals/{animal_id}/identifiers", nothing, vets),
        ("GET", "/v1/keyframes/image?device_id=d&track_id=t&t=2026-09-01T00:00:00Z", {}, readers),
        ("GET", "/v1/events", {}, readers),
        ("POST", "/v1/events", nothing, vets),
        ("POST", "/v1/events/no-such/retract", nothing, vets),
        ("GET", "/v1/review", {}, readers),
        ("POST", "/v1/review/confirm", nothing, vets),
        ("POST", "/v1/review/reassign", nothing, vets),
        ("POST", "/v1/review/new", nothing, vets),
        ("POST", "/v1/review/merge", nothing, vets),
        ("POST", "/v1/review/split", nothing, vets),
        ("GET", "/v1/queries", {}, readers),
        ("POST", "/v1/queries/growth", nothing, readers),
        ("POST", "/v1/sql", {"json": {"sql": "SELECT 1 AS one"}}, analysts),
        ("GET", "/v1/export?from=2099-01-01&to=2099-01-02", {}, analysts),
        ("GET", "/v1/keys", {}, {"admin"}),
        ("POST", "/v1/keys", nothing, {"admin"}),
        ("DELETE", "/v1/keys/nobody", {}, {"admin"}),
    ]


def test_every_endpoint_refuses_no_key_a_bad_key_and_the_wrong_role(served: Service) -> None:
    client = served.client
    routes = {
        (method.upper(), path)
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        if path.startswith("/v1")
        for method in operations
    }
    covered = set()
    for method, path, kwargs, allowed in _endpoints(served):
        template = next(p for m, p in routes if m == method and _matches(p, path.split("?")[0]))
        covered.add((method, template))
        assert _error(client.request(method, path, **kwargs), 401)["code"] == "unauthorized"
        bad = {"Authorization": "Bearer hr_000000000000_" + "x" * 43}
        assert _error(client.request(method, path, headers=bad, **kwargs), 401)
        for role in ROLES:
            response = client.request(method, path, headers=served.as_(role), **kwargs)
            if role in allowed:
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                error = _error(response, 403)
                assert role in error["message"], error
    assert covered == routes, routes - covered


def _matches(template: str, path: str) -> bool:
    parts, given = template.split("/"), path.split("/")
    return len(parts) == len(given) and all(
        p == g or p.startswith("{") for p, g in zip(parts, given, strict=True)
    )


def test_health_needs_no_key_and_says_what_is_served(served: Service) -> None:
    assert served.client.get("/healthz").json() == {"status": "ok"}  # keyless: only that
    health = served.client.get("/healthz", headers=served.as_("edge"))
    assert health.status_code == 200
    assert health.json()["schema_version"] == served.record.schema_version
    assert health.json()["farm_id"] == "farm-a"
    # The barn's day-3 Parquet upload held several batches: uploads and commits are counted.
    assert 0 < health.json()["commits"] <= health.json()["uploads"]
    assert health.json()["links"] >= 1 and health.json()["last_link_error"] is None


def test_errors_have_one_shape_even_from_the_framework(served: Service) -> None:
    client, admin = served.client, served.as_("admin")
    assert _error(client.get("/v1/nothing-here", headers=admin), 404)["code"] == "not_found"
    assert _error(client.put("/v1/animals", headers=admin), 405)
    invalid = _error(client.get("/v1/animals?limit=0", headers=admin), 422)
    assert invalid["problems"] and "limit" in invalid["problems"][0]
    assert _error(client.get("/v1/animals/NOPE", headers=admin), 404)


# --- uploads ------------------------------------------------------------------------------


def test_the_uploaded_barn_is_stored_whole_and_linked(served: Service) -> None:
    assert _ledger(served.record) == sorted(b["batch_id"] for b in served.batches)
    animals = served.client.get("/v1/animals", headers=served.as_("vet")).json()
    assert animals["total"] >= SIM.animals
    assert all(a["days"] >= 1 for a in animals["animals"])


def test_a_re_upload_is_200_duplicate_and_stores_nothing_new(served: Service) -> None:
    before = _ledger(served.record)
    batch = served.batches[0]
    response = served.client.post("/v1/batches", json=batch, headers=served.as_("edge"))
    assert response.status_code == 200
    assert response.json() == {
        "status": "duplicate",
        "batches": [
            {"batch_id": batch["batch_id"], "status": "duplicate", "rows": 0, "problems": []}
        ],
    }
    assert _ledger(served.record) == before


def test_a_batch_another_writer_stored_meanwhile_is_a_duplicate(served: Service) -> None:
    edge = served.as_("edge")
    first = make_batch("dev-07/2026-11-21T06", device_id="dev-07")
    assert served.client.post("/v1/batches", json=first, headers=edge).status_code == 201
    # The CLI (another writer) ingests a batch between two of the service's commits.
    other = make_batch("dev-07/2026-11-21T12", device_id="dev-07", track_offset=10)
    ingest(served.record, [parse_json(json.dumps(other).encode(), "cli")])
    again = served.client.post("/v1/batches", json=other, headers=edge)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    reused = make_batch("dev-07/2026-11-22T00", device_id="dev-07", track_offset=10)
    error = _error(served.client.post("/v1/batches", json=reused, headers=edge), 422)
    assert any("already stored" in p for p in error["problems"])


def test_a_new_batch_is_201_with_its_rows(served: Service) -> None:
    batch = make_batch("dev-09/2026-11-21T06", device_id="dev-09", dim=384)
    response = served.client.post("/v1/batches", json=batch, headers=served.as_("edge"))
    assert response.status_code == 201, response.text
    (result,) = response.json()["batches"]
    assert result["status"] == "accepted" and result["rows"] > 0
    assert batch["batch_id"] in _ledger(served.record)


def test_an_invalid_batch_is_422_with_every_problem_and_nothing_stored(served: Service) -> None:
    before = _ledger(served.record)
    batch = make_batch("dev-09/bad", device_id="dev-09", track_offset=500)
    batch["tracklets"][0]["camera_id"] = ""
    batch["tracklets"][1]["pen_id"] = ""
    error = _error(served.client.post("/v1/batches", json=batch, headers=served.as_("edge")), 422)
    assert error["code"] == "batch_rejected"
    assert len(error["problems"]) >= 2
    assert any("tracklets[0].camera_id" in p for p in error["problems"])
    assert _ledger(served.record) == before


@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 422, "json"),
        (b"", {"Content-Type": "application/json"}, 422, "empty"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 422, "batch"),
        (b"\x1f\x8b\x08\x00trunc", {"Content-Type": "application/gzip"}, 422, "gzip"),
        (b"plain", {"Content-Type": "application/gzip"}, 422, "gzip"),
        (b"PAR1garbage", {"Content-Type": "application/vnd.apache.parquet"}, 422, "parquet"),
        (b"<html>", {"Content-Type": "text/html"}, 415, "text/html"),
        (b"{}" + b"[" * 100_000, {"Content-Type": "application/json"}, 422, "json"),
    ],
)
def test_malformed_bodies_are_refused_cleanly(
    served: Service, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    before = _ledger(served.record)
    response = served.client.post(
        "/v1/batches", content=body, headers={**served.as_("edge"), **headers}
    )
    error = _error(response, status)
    assert needle in (error["message"] + " ".join(error["problems"])).lower(), error
    assert _ledger(served.record) == before


def test_a_parquet_upload_with_one_bad_batch_stores_none_of_it(served: Service) -> None:
    before = _ledger(served.record)
    good = make_batch("dev-08/2026-11-21T06", device_id="dev-08")
    bad = make_batch("dev-08/2026-11-21T12", device_id="dev-08", track_offset=100)
    bad["embedder"]["name"] = "another-model"
    response = served.client.post(
        "/v1/batches",
        content=_parquet([good, bad]),
        headers={**served.as_("edge"), "Content-Type": "application/vnd.apache.parquet"},
    )
    error = _error(response, 422)
    assert any("another-model" in p for p in error["problems"])
    assert any("whole or not at all" in p for p in error["problems"])
    assert _ledger(served.record) == before
    # The good batch alone is then accepted: the rejection left nothing half-stored.
    again = served.client.post("/v1/batches", json=good, headers=served.as_("edge"))
    assert again.status_code == 201


def test_a_body_over_the_limit_is_413_before_anything_is_stored(tmp_path: Path) -> None:
    settings = service_settings(tmp_path / "herd", api_max_body_bytes=2_000)
    record = create_record(str(tmp_path / "herd"), settings)
    keys = make_keys(record)
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {keys['edge']}"}
        error = _error(client.post("/v1/batches", json=make_batch(), headers=headers), 413)
        assert "HERDRECORD_API_MAX_BODY_BYTES" in error["message"]
        streamed = client.post(
            "/v1/batches",
            content=iter([b"{" * 1500, b"{" * 1500]),  # no Content-Length: counted as read
            headers={**headers, "Content-Type": "application/json"},
        )
        assert _error(streamed, 413)
    assert _ledger(record) == []


# --- reading ------------------------------------------------------------------------------


def test_animals_filter_by_pen_status_and_search(served: Service) -> None:
    client, vet = served.client, served.as_("vet")
    every = client.get("/v1/animals", headers=vet).json()["animals"]
    pen = every[0]["pen_id"]
    in_pen = client.get("/v1/animals", params={"pen_id": pen}, headers=vet).json()
    assert in_pen["total"] == sum(1 for a in every if a["pen_id"] == pen) > 0
    assert client.get("/v1/animals", params={"status": "departed"}, headers=vet).json()[
        "total"
    ] == sum(1 for a in every if a["status"] == "departed")
    one = every[-1]["animal_id"]
    found = client.get("/v1/animals", params={"q": one.lower()}, headers=vet).json()
    assert [a["animal_id"] for a in found["animals"]] == [one]
    page = client.get("/v1/animals", params={"limit": 2, "offset": 1}, headers=vet).json()
    assert [a["animal_id"] for a in page["animals"]] == [a["animal_id"] for a in every[1:3]]
    assert client.get(f"/v1/animals/{one}", headers=vet).json()["animal_id"] == one


def _busiest(service: Service) -> str:
    animals = service.client.get("/v1/animals", headers=service.as_("vet")).json()["animals"]
    return str(max(animals, key=lambda a: a["days"])["animal_id"])


def test_timeline_has_the_days_events_and_links_of_the_animal(served: Service) -> None:
    animal_id = _busiest(served)
    response = served.client.get(f"/v1/animals/{animal_id}/timeline", headers=served.as_("vet"))
    assert response.status_code == 200, response.text
    timeline = response.json()
    stored = served.record.table("days").to_lance().to_table(filter=f"animal_id = '{animal_id}'")
    assert [d["day"] for d in timeline["days"]] == sorted(
        d.isoformat() for d in stored.column("day").to_pylist()
    )
    assert all(d["observed_min"] > 0 for d in timeline["days"])
    assert timeline["links_total"] >= len(timeline["days"])
    assert all(link["animal_id"] == animal_id for link in timeline["links"] if link["current"])
    last_day = timeline["days"][-1]["day"]
    window = served.client.get(
        f"/v1/animals/{animal_id}/timeline",
        params={"from": last_day, "to": last_day},
        headers=served.as_("vet"),
    ).json()
    assert [d["day"] for d in window["days"]] == [last_day]
    # Unchanged data: the ETag comes back and the client is told 304, with no body.
    tag = response.headers["etag"]
    unchanged = served.client.get(
        f"/v1/animals/{animal_id}/timeline",
        headers={**served.as_("vet"), "If-None-Match": tag},
    )
    assert unchanged.status_code == 304 and unchanged.content == b""
    swapped = served.client.get(
        f"/v1/animals/{animal_id}/timeline",
        params={"from": "2026-09-03", "to": "2026-09-01"},
        headers=served.as_("vet"),
    )
    assert "swap" in _error(swapped, 422)["message"]


def test_keyframes_are_listed_by_day_and_served_as_jpeg(served: Service) -> None:
    animal_id = _busiest(served)
    listing = served.client.get(f"/v1/animals/{animal_id}/keyframes", headers=served.as_("vet"))
    keyframes = listing.json()["keyframes"]
    assert keyframes, listing.text
    days = [k["day"] for k in keyframes]
    assert days == sorted(days, reverse=True)
    image = served.client.get(keyframes[0]["url"], headers=served.as_("vet"))
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).format == "JPEG"
    missing = served.client.get(
        "/v1/keyframes/image",
        params={"device_id": "dev-01", "track_id": "nope", "t": "2026-09-01T00:00:00Z"},
        headers=served.as_("vet"),
    )
    assert _error(missing, 404)
    # Any time schemathesis may send is a clean 404 (once a year-336 time was a 500).
    odd = served.client.get(
        "/v1/keyframes/image",
        params={"device_id": "YFb", "track_id": "m26Aj@f0", "t": "0336-09-20T00:48:57+15:29"},
        headers=served.as_("vet"),
    )
    assert _error(odd, 404)
    same_moment = served.client.get(
        "/v1/keyframes/image",
        params={
            "device_id": keyframes[0]["device_id"],
            "track_id": keyframes[0]["track_id"],
            "t": datetime.fromisoformat(keyframes[0]["t"])
            .astimezone(timezone(timedelta(hours=2)))
            .isoformat(),
        },
        headers=served.as_("vet"),
    )
    assert same_moment.content == image.content  # the same instant in another zone


# --- events and review --------------------------------------------------------------------


def test_events_are_added_by_the_caller_listed_and_retracted(served: Service) -> None:
    client, vet = served.client, served.as_("vet")
    animal_id = _busiest(served)
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    score = {"animal_id": animal_id, "kind": "lameness", "at": at, "scale": "0-3", "value": 2}
    added = client.post("/v1/events", json={"events": [score]}, headers=vet)
    assert added.status_code == 201, added.text
    (event_id,) = added.json()["event_ids"]
    listed = client.get(
        "/v1/events", params={"animal_id": animal_id, "kind": "lameness"}, headers=vet
    ).json()["events"]
    mine = [e for e in listed if e["event_id"] == event_id]
    assert mine and mine[0]["author"] == "vet-1" and mine[0]["value"] == 2
    # The new event changes the timeline: its cached answer and its ETag are not reused.
    timeline = client.get(f"/v1/animals/{animal_id}/timeline", headers=vet).json()
    assert event_id in {e["event_id"] for e in timeline["events"]}
    retracted = client.post(
        f"/v1/events/{event_id}/retract", json={"reason": "wrong pig"}, headers=vet
    )
    assert retracted.status_code == 201, retracted.text
    after = client.get("/v1/events", params={"animal_id": animal_id}, headers=vet).json()
    assert event_id not in {e["event_id"] for e in after["events"]}
    again = client.post(f"/v1/events/{event_id}/retract", json={"reason": "x"}, headers=vet)
    assert _error(again, 409)["code"] == "event_superseded"


def test_bad_events_are_422_with_every_problem_and_none_stored(served: Service) -> None:
    client, vet = served.client, served.as_("vet")
    before = client.get("/v1/events", headers=vet).json()["total"]
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    events = [
        {"animal_id": _busiest(served), "kind": "weight", "at": at, "value": 80},
        {"animal_id": "NOPE", "kind": "weight", "at": at, "value": 80},
        {"animal_id": _busiest(served), "kind": "lameness", "at": at, "scale": "0-3", "value": 7},
    ]
    error = _error(client.post("/v1/events", json={"events": events}, headers=vet), 422)
    assert any(p.startswith("events[1]") and "NOPE" in p for p in error["problems"])
    assert any(p.startswith("events[2]") and "outside scale" in p for p in error["problems"])
    assert client.get("/v1/events", headers=vet).json()["total"] == before


def _history(service: Service, animal_id: str) -> list[dict[str, Any]]:
    timeline = service.client.get(
        f"/v1/animals/{animal_id}/timeline", params={"links": 100_000}, headers=service.as_("vet")
    )
    return list(timeline.json()["links"])


def test_review_answers_change_the_links_and_show_in_the_history(served: Service) -> None:
    client, vet = served.client, served.as_("vet")
    queue = client.get("/v1/review", headers=vet).json()["items"]
    animals = [a["animal_id"] for a in client.get("/v1/animals", headers=vet).json()["animals"]]
    first, second = animals[0], animals[1]
    tracklet = next(link["tracklet"] for link in _history(served, first) if link["current"])

    confirmed = client.post("/v1/review/confirm", json={"tracklet": tracklet}, headers=vet)
    assert confirmed.status_code == 200, confirmed.text
    latest = _history(served, first)[0]
    assert latest["tracklet"] == tracklet and latest["decided_by"] == "vet-1"

    moved = client.post(
        "/v1/review/reassign", json={"tracklet": tracklet, "animal_id": second}, headers=vet
    )
    assert moved.status_code == 200, moved.text
    assert any(
        link["tracklet"] == tracklet and link["current"] for link in _history(served, second)
    )

    new = client.post(
        "/v1/review/new", json={"tracklets": [tracklet], "name": "Rosie"}, headers=vet
    ).json()
    (new_id,) = new["animals"]
    assert client.get(f"/v1/animals/{new_id}", headers=vet).json()["display_name"] == "Rosie"

    # The tracklet was the first animal's, so the new animal merges back into it cleanly.
    merged = client.post("/v1/review/merge", json={"keep": first, "gone": new_id}, headers=vet)
    assert merged.status_code == 200, merged.text
    assert client.get(f"/v1/animals/{new_id}", headers=vet).json()["merged_into"] == first
    gone = client.get(f"/v1/animals/{new_id}/timeline", headers=vet)
    assert _error(gone, 404)["code"] == "merged"

    split = client.post(
        "/v1/review/split", json={"animal_id": first, "tracklets": [tracklet]}, headers=vet
    )
    assert split.status_code == 200, split.text
    assert len(split.json()["animals"]) == 2
    unknown = {"device_id": "dev-01", "track_id": "no-such-track"}
    assert _error(client.post("/v1/review/confirm", json={"tracklet": unknown}, headers=vet), 404)
    priorities = [item["priority"] for item in queue]
    assert priorities == sorted(priorities, reverse=True)


# --- questions ----------------------------------------------------------------------------


def test_named_queries_are_listed_and_run_as_json_csv_and_parquet(served: Service) -> None:
    client, vet = served.client, served.as_("vet")
    queries = {q["name"]: q for q in client.get("/v1/queries", headers=vet).json()["queries"]}
    assert {"growth", "lameness", "disease"} <= set(queries)
    assert queries["lameness"]["params"]
    rows = client.post("/v1/queries/growth", json={"params": {}}, headers=vet)
    assert rows.status_code == 200, rows.text
    body = rows.json()
    assert body["row_count"] == len(body["rows"]) and body["columns"]
    csv_rows = client.post("/v1/queries/growth?format=csv", json={}, headers=vet)
    assert csv_rows.headers["content-type"].startswith("text/csv")
    assert csv_rows.text.splitlines()[0].split(",")[0].strip('"') == body["columns"][0]
    parquet = client.post("/v1/queries/growth?format=parquet", json={}, headers=vet)
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == body["row_count"]
    bad = client.post("/v1/queries/lameness", json={"params": {"nope": "1"}}, headers=vet)
    assert "nope" in " ".join(_error(bad, 422)["problems"])
    assert _error(client.post("/v1/queries/nope", json={}, headers=vet), 404)


def test_free_sql_is_sandboxed_and_limited(served: Service) -> None:
    client, analyst = served.client, served.as_("analyst")
    ok = client.post("/v1/sql", json={"sql": "SELECT count(*) AS n FROM animals"}, headers=analyst)
    assert ok.status_code == 200, ok.text
    assert ok.json()["rows"][0][0] >= SIM.animals
    for statement in (
        "DROP TABLE animals",
        "COPY animals TO '/tmp/x.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
    ):
        error = _error(client.post("/v1/sql", json={"sql": statement}, headers=analyst), 422)
        assert error["code"] in ("rejected", "failed"), error


def test_export_streams_a_zip_of_parquet_with_its_size(served: Service) -> None:
    with served.client.stream("GET", "/v1/export", headers=served.as_("analyst")) as response:
        assert response.status_code == 200
        size = int(response.headers["content-length"])
        data = b"".join(response.iter_bytes())
    assert len(data) == size
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert "manifest.json" in names and "data-dictionary.md" in names
    animals = [n for n in names if n.startswith("animals") and n.endswith(".parquet")]
    table = pq.read_table(io.BytesIO(archive.read(animals[0])))
    assert table.num_rows >= SIM.animals
    assert json.loads(archive.read("manifest.json"))["tables"]
    empty = served.client.get(
        "/v1/export?from=2026-09-03&to=2026-09-01", headers=served.as_("analyst")
    )
    assert _error(empty, 422)


# --- keys ---------------------------------------------------------------------------------


def test_admins_make_list_and_revoke_keys_and_a_revoked_key_stops_working(
    served: Service,
) -> None:
    client, admin = served.client, served.as_("admin")
    made = client.post("/v1/keys", json={"name": "vet-2", "role": "vet"}, headers=admin)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert client.get("/v1/animals", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = client.get("/v1/keys", headers=admin).json()["keys"]
    assert {"vet-2", "admin-1"} <= {k["name"] for k in listed}
    assert all("key" not in k and "key_sha256" not in k for k in listed)
    assert key not in json.dumps(listed)
    twice = client.post("/v1/keys", json={"name": "vet-2", "role": "vet"}, headers=admin)
    assert "revoke" in _error(twice, 422)["message"]
    assert client.delete("/v1/keys/vet-2", headers=admin).json()["revoked_at"]
    assert _error(client.get("/v1/animals", headers={"Authorization": f"Bearer {key}"}), 401)
    assert _error(client.delete("/v1/keys/vet-2", headers=admin), 404)
    assert _error(client.post("/v1/keys", json={"name": "x", "role": "root"}, headers=admin), 422)


def test_keys_never_reach_the_logs(served: Service, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for role in ROLES:
            served.client.get("/v1/animals", headers=served.as_(role))
            served.client.post("/v1/batches", content=b"{", headers=served.as_(role))
    text = caplog.text
    assert all(key not in text for key in served.keys.values())
    assert all(key.split("_", 2)[2] not in text for key in served.keys.values())


def test_keys_commands_add_list_and_revoke(tmp_path: Path) -> None:
    path = tmp_path / "herd"
    create_record(str(path), Settings())
    added = runner.invoke(cli_app, ["keys", "add", str(path), "barn-cam", "--role", "edge"])
    assert added.exit_code == 0, added.output
    key = added.output.strip().splitlines()[-1]
    assert key.startswith("hr_")
    listed = runner.invoke(cli_app, ["keys", "list", str(path)])
    assert "barn-cam" in listed.output and "edge" in listed.output and key not in listed.output
    wrong = runner.invoke(cli_app, ["keys", "add", str(path), "x", "--role", "root"])
    assert wrong.exit_code == 2 and "role 'root'" in wrong.output
    revoked = runner.invoke(cli_app, ["keys", "revoke", str(path), "barn-cam"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    record = open_record(str(path), Settings())
    assert [k.active for k in list_keys(record)] == [False]
    again = runner.invoke(cli_app, ["keys", "revoke", str(path), "barn-cam"])
    assert again.exit_code == 2 and "no active key" in again.output


# --- the writer ---------------------------------------------------------------------------


def test_uploads_queued_together_are_each_whole_or_nothing(record: Record) -> None:
    def candidate(batch: dict[str, Any]) -> Any:
        return parse_json(json.dumps(batch).encode(), str(batch["batch_id"]))

    a = make_batch("dev-01/a", track_offset=0)
    b1 = make_batch("dev-01/b1", track_offset=10)
    b2 = make_batch("dev-01/b2", track_offset=20)
    b2["embedder"]["dim"] = 3
    c = make_batch("dev-01/c", track_offset=30)
    results = commit_uploads(
        record, [[candidate(a)], [candidate(b1), candidate(b2)], [candidate(c), candidate(a)]]
    )
    assert [[o.status for o in r] for r in results] == [
        ["accepted"],
        ["rejected", "rejected"],
        ["accepted", "duplicate"],
    ]
    assert "whole or not at all" in results[1][0].problems[0]
    assert record.committed_batch_ids().to_pylist() == ["dev-01/a", "dev-01/c"]
    versions = record.table("batches").version
    assert versions == 2  # one ledger write for the whole group


def test_closing_the_writer_finishes_every_queued_upload(record: Record) -> None:
    batches = [make_batch(f"dev-02/{i}", device_id="dev-02", track_offset=10 * i) for i in range(6)]

    async def scenario() -> list[str]:
        writer = Writer(record)
        writer.start(link_pending_now=False)
        uploads = [
            asyncio.create_task(
                writer.upload([parse_json(json.dumps(b).encode(), str(b["batch_id"]))])
            )
            for b in batches
        ]
        await asyncio.sleep(0)  # every upload is queued before the close
        await writer.close()
        return [(await u)[0].status for u in uploads]

    assert asyncio.run(scenario()) == ["accepted"] * 6
    assert sorted(record.committed_batch_ids().to_pylist()) == sorted(
        b["batch_id"] for b in batches
    )


def test_a_closed_writer_refuses_new_writes_with_503(record: Record) -> None:
    from herdrecord.api.problems import ApiError

    async def scenario() -> int:
        writer = Writer(record)
        writer.start(link_pending_now=False)
        await writer.close()
        try:
            await writer.upload([])
        except ApiError as exc:
            return exc.status
        return 0

    assert asyncio.run(scenario()) == 503


def test_an_unreadable_table_in_the_record_is_a_500_in_the_one_shape(
    served: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    from herdrecord.api.routes import animals

    def broken(*args: object, **kwargs: object) -> pa.Table:
        raise OSError("disk on fire")

    monkeypatch.setattr(animals, "find_animals", broken)
    client = TestClient(served.client.app, raise_server_exceptions=False)
    error = _error(client.get("/v1/animals", headers=served.as_("vet")), 500)
    assert "disk" not in error["message"]


def test_named_query_parameters_are_json_numbers_booleans_or_text(served: Service) -> None:
    client, vet = served.client, served.as_("vet")
    as_text = client.post(
        "/v1/queries/lameness",
        json={"params": {"min_score": "1", "change_pct": "2.5"}},
        headers=vet,
    )
    as_json = client.post(
        "/v1/queries/lameness", json={"params": {"min_score": 1, "change_pct": 2.5}}, headers=vet
    )
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["rows"] == as_text.json()["rows"]
    whole = client.post("/v1/queries/growth", json={"params": {"days": 7.0}}, headers=vet)
    assert whole.status_code == 200, whole.text  # JSON's 7.0 is the whole number 7
    defaults = client.post("/v1/queries/growth", json={"params": {"as_of": None}}, headers=vet)
    no_body = client.post("/v1/queries/growth", headers=vet)  # nothing to give: no body
    assert no_body.status_code == 200, no_body.text
    assert no_body.json()["rows"] == defaults.json()["rows"]
    wrong = client.post("/v1/queries/lameness", json={"params": {"min_score": True}}, headers=vet)
    assert _error(wrong, 422)["problems"] == ["min_score='true' is not a whole number"]


def test_every_invalid_input_has_one_code(served: Service) -> None:
    client, vet = served.client, served.as_("vet")
    framework = _error(client.get("/v1/animals?limit=0", headers=vet), 422)
    library = _error(
        client.post("/v1/queries/lameness", json={"params": {"days": 99}}, headers=vet), 422
    )
    shape = _error(client.post("/v1/queries/growth", json={"params": {"a": [1]}}, headers=vet), 422)
    assert framework["code"] == library["code"] == shape["code"] == "invalid_input"


def test_a_not_found_names_the_endpoint_not_a_command(served: Service) -> None:
    client, vet = served.client, served.as_("vet")
    for path, listed_by in [
        ("/v1/animals/NOPE", "GET /v1/animals"),
        ("/v1/animals/NOPE/timeline", "GET /v1/animals"),
    ]:
        error = _error(client.get(path, headers=vet), 404)
        assert "herdrecord " not in error["message"] and listed_by in error["message"], error
    query = _error(client.post("/v1/queries/nope", headers=vet), 404)
    assert "herdrecord " not in query["message"] and "GET /v1/queries" in query["message"]


def test_docs_load_nothing_from_outside_the_service(served: Service) -> None:
    page = served.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # no outside address
    assert "<script" not in page.text
    openapi = served.client.get("/openapi.json").json()
    for path in openapi["paths"]:
        assert f'<span class="path">{path}</span>' in page.text, path
    assert 'href="/openapi.json"' in page.text
    assert "cdn" not in served.client.get("/redoc").text.lower()
