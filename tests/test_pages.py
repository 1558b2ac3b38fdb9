"""The web pages through the ASGI client: sign-in and sessions, who may do what, forms that
store (or refuse and store nothing), downloads, and charts that stay small for a year.

The real browser drives the same pages in test_browser.py."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from conftest import service_settings
from herdrecord.api.keys import add_key, revoke_key
from herdrecord.events.rules import parse_event
from herdrecord.events.store import add_events, current_events
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.audit import history
from herdrecord.linking.review import enrol_new
from herdrecord.linking.run import link_pending
from herdrecord.lookup.animals import get_animal
from herdrecord.lookup.herd import herd_overview
from herdrecord.lookup.review_queue import review_queue
from herdrecord.query.cohorts import run_query
from herdrecord.server import create_app
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import Record, create_record
from herdrecord.web.charts import BUDGET_BARS, GROWTH_POINTS, budget_chart, growth_chart
from herdrecord.web.session import COOKIE

SIM = SimulationConfig(
    animals=8,
    pens=2,
    days=3,
    seed=5,
    arrival_rate_per_day=0.0,
    lameness_rate_per_day=0.05,
    obs_interval_s=120.0,
    # Field-like identity (one sample per tracklet, a weak look): the queue has close calls.
    samples_per_tracklet_max=1,
    identity_norm=0.15,
)
PAGES = ("/herd", "/cohorts", "/review", "/animals/P00001")


@dataclass
class Site:
    """A served record, its client (HTTPS, as the pages expect) and a key per role."""

    client: TestClient
    record: Record
    keys: dict[str, str]
    path: Path

    def sign_in(self, role: str) -> TestClient:
        self.client.cookies.clear()
        response = self.client.post(
            "/sign-in", data={"key": self.keys[role], "next": "/herd"}, follow_redirects=False
        )
        assert response.status_code == 303, response.text
        return self.client

    def csrf(self, page: str = "/herd") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(page).text)
        assert found is not None
        return found.group(1)


def _barn(path: Path) -> Record:
    """The simulated barn ingested and linked into a new record at `path`."""
    record = create_record(str(path), service_settings(path))
    batches = [*simulate(SIM).batches, _stray_batch(simulate(SIM).batches)]
    ingest(record, [parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in batches])
    link_pending(record)
    return record


def _stray_batch(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """One more batch from pen-2's device: a 10-minute track of a fifth pig-sized thing at a
    moment when all four of the pen's pigs are tracked. The head count leaves it unknown."""
    tracks = [t for b in batches if b["device_id"] == "dev-02" for t in b["tracklets"]]
    ends = sorted((t["start"], t["end"]) for t in tracks)
    for start, _ in ends:
        running = [t for t in tracks if t["start"] <= start < t["end"]]
        if len(running) == 4 and min(t["end"] for t in running) >= _later(start, 600):
            break
    else:
        raise AssertionError("the simulated pen is never fully in view for 10 minutes")
    template = json.loads(json.dumps(running[0]))
    end = _later(start, 600)
    template.update(
        track_id="cam1-stray",
        start=start,
        end=end,
        tag_id=None,
        keyframes=[],
        samples=[
            {
                **template["samples"][0],
                "t": start,
                "embedding": [(-1.0) ** i / 19.6 for i in range(384)],
            }
        ],
        observations=[{**template["observations"][0], "t": start}],
    )
    return {
        **batches[0],
        "batch_id": "dev-02/stray",
        "device_id": "dev-02",
        "tracklets": [template],
    }


def _later(stamp: str, seconds: int) -> str:
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    path = tmp_path_factory.mktemp("pages") / "herd"
    record = _barn(path)
    keys = {
        role: add_key(record, f"{role}-1", role, "test")[1]
        for role in ("edge", "vet", "analyst", "admin")
    }
    with TestClient(create_app(record.settings), base_url="https://testserver") as client:
        yield Site(client, record, keys, path)


@contextmanager
def fresh_site(tmp_path: Path) -> Iterator[tuple[TestClient, Record, str]]:
    """A fresh copy of the simulated barn served, a vet signed in, and the form token."""
    record = _barn(tmp_path / "herd")
    settings = record.settings
    _, key = add_key(record, "vet-4", "vet", "test")
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        client.post("/sign-in", data={"key": key})
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/herd").text)
        assert csrf is not None
        yield client, record, csrf.group(1)


def _animal_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-animal="([^"]+)"', html)


def test_every_page_sends_a_stranger_to_sign_in_and_back(site: Site) -> None:
    site.client.cookies.clear()
    for page in (*PAGES, "/frames?device_id=a&track_id=b&t=2026-09-01T00:00:00Z"):
        response = site.client.get(page, follow_redirects=False)
        assert response.status_code == 303, page
        assert response.headers["location"].startswith("/sign-in?next=")
    response = site.client.get("/animals/P00001?from=2026-09-01")
    assert "Sign in" in response.text
    signed = site.client.post(
        "/sign-in",
        data={"key": site.keys["vet"], "next": "/animals/P00001?from=2026-09-01"},
        follow_redirects=False,
    )
    assert signed.headers["location"] == "/animals/P00001?from=2026-09-01"
    cookie = signed.headers["set-cookie"]
    for flag in ("HttpOnly", "SameSite=strict", "Secure", "Path=/"):
        assert flag in cookie
    assert site.keys["vet"] not in cookie  # the cookie names a session, never the key


def test_a_post_without_a_session_changes_nothing(site: Site) -> None:
    site.client.cookies.clear()
    before = current_events(site.record).num_rows
    response = site.client.post(
        "/animals/P00001/events",
        data={"csrf": "x", "kind": "note", "at": "2026-09-02T10:00", "note": "hello"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert current_events(site.record).num_rows == before


@pytest.mark.parametrize(
    ("key", "status", "says"),
    [
        ("hr_000000000000_" + "a" * 43, 401, "unknown or revoked"),
        ("not a key", 401, "unknown or revoked"),
        ("edge", 403, "for edge devices"),
    ],
)
def test_sign_in_refusals_say_why(site: Site, key: str, status: int, says: str) -> None:
    site.client.cookies.clear()
    response = site.client.post("/sign-in", data={"key": site.keys.get(key, key)})
    assert response.status_code == status
    assert says in response.text
    assert COOKIE not in response.headers.get("set-cookie", "")


def test_sign_in_never_redirects_to_another_site(site: Site) -> None:
    site.client.cookies.clear()
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = site.client.post(
            "/sign-in", data={"key": site.keys["vet"], "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/herd"


def test_plain_http_from_another_machine_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), service_settings(path))
    _, key = add_key(record, "vet-2", "vet", "test")
    with TestClient(create_app(service_settings(path)), base_url="http://farm-office") as client:
        refused = client.post("/sign-in", data={"key": key})
        assert refused.status_code == 400
        assert "HTTPS" in refused.text
    allowed = service_settings(path, ui_allow_http=True)
    with TestClient(create_app(allowed), base_url="http://farm-office") as client:
        response = client.post("/sign-in", data={"key": key}, follow_redirects=False)
        assert response.status_code == 303
        assert "Secure" not in response.headers["set-cookie"]  # a browser would drop it
        assert client.get("/herd", follow_redirects=False).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}],
)
def test_another_site_cannot_sign_a_person_in(site: Site, headers: dict[str, str]) -> None:
    site.client.cookies.clear()
    response = site.client.post("/sign-in", data={"key": site.keys["vet"]}, headers=headers)
    assert response.status_code == 403
    assert COOKIE not in response.headers.get("set-cookie", "")
    same = site.client.post(
        "/sign-in",
        data={"key": site.keys["vet"]},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "https://testserver"},
        follow_redirects=False,
    )
    assert same.status_code == 303


def test_sign_out_ends_the_session_on_the_server(site: Site) -> None:
    client = site.sign_in("vet")
    token = client.cookies[COOKIE]
    response = client.post("/sign-out", data={"csrf": site.csrf()}, follow_redirects=False)
    assert response.headers["location"] == "/sign-in"
    client.cookies.set(COOKIE, token, domain="testserver")  # a copy of the old cookie
    assert client.get("/herd", follow_redirects=False).status_code == 303


def test_revoking_a_key_ends_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), service_settings(path))
    _, key = add_key(record, "vet-3", "vet", "test")
    with TestClient(create_app(service_settings(path)), base_url="https://testserver") as client:
        client.post("/sign-in", data={"key": key})
        assert client.get("/herd", follow_redirects=False).status_code == 200
        revoke_key(record, "vet-3")
        assert client.get("/herd", follow_redirects=False).status_code == 303


def test_herd_lists_every_active_animal_by_pen_and_searches(site: Site) -> None:
    client = site.sign_in("vet")
    page = client.get("/herd")
    assert page.status_code == 200
    active = {
        row["animal_id"]
        for row in site.record.table("animals").to_lance().to_table().to_pylist()
        if row["status"] == "active"
    }
    assert set(_animal_ids(page.text)) == active
    assert re.findall(r'<section class="pen" data-pen="([^"]+)"', page.text) == sorted(
        {row["pen_id"] for row in site.record.table("days").to_lance().to_table().to_pylist()}
    )
    # The simulated barn's days are in September: the page says nothing came in since.
    assert 'id="stale"' in page.text and "Is the edge still uploading?" in page.text
    herd = herd_overview(site.record, today=date(2026, 9, 4))
    last_seen = {a.animal.animal_id: a.days_since_seen for p in herd.pens for a in p.animals}
    assert last_seen["P00001"] == 1  # seen on 3 September, the barn's last day
    one = sorted(active)[0]
    found = client.get(f"/herd?q={one.lower()}", follow_redirects=False)
    assert found.headers["location"] == f"/animals/{one}"  # a single match opens it
    assert "No animals match" in client.get("/herd?q=zzz-none").text


def test_review_counts_on_the_herd_page_match_the_queue(site: Site) -> None:
    client = site.sign_in("analyst")
    page = client.get("/herd").text
    expected: dict[str, int] = {}
    for item in review_queue(site.record, 10_000):
        if item.animal_id:
            expected[item.animal_id] = expected.get(item.animal_id, 0) + 1
    for animal_id, count in expected.items():
        row = re.search(rf'<tr data-animal="{animal_id}">(.*?)</tr>', page, re.S)
        assert row is not None and f"{count} to review" in row.group(1)


def test_animal_page_shows_its_days_charts_and_history(site: Site) -> None:
    client = site.sign_in("vet")
    page = client.get("/animals/P00001").text
    days = site.record.table("days").to_lance().to_table(filter="animal_id = 'P00001'")
    assert f"{days.num_rows} days with records" in page
    assert page.count('class="day') >= 1
    assert 'data-chart="growth"' in page and 'data-chart="budget"' in page
    frames = re.findall(r'src="(/frames\?[^"]+)"', page)
    image = client.get(frames[0].replace("&amp;", "&"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content[:2] == b"\xff\xd8"
    decisions = len(history(site.record, "P00001"))
    assert f"{decisions} decisions" in page


def test_animal_page_errors_are_pages(site: Site) -> None:
    client = site.sign_in("vet")
    missing = client.get("/animals/NOPE")
    assert missing.status_code == 404 and "no animal NOPE" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    swapped = client.get("/animals/P00001?from=2026-09-03&to=2026-09-01")
    assert swapped.status_code == 422 and "after it ends" in swapped.text
    bad = client.get("/animals/P00001?from=yesterday")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    api = client.get("/v1/animals")  # the API keeps its JSON errors and ignores the cookie
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"


def test_a_vet_records_an_event_from_the_animal_page(site: Site) -> None:
    client = site.sign_in("vet")
    csrf = site.csrf("/animals/P00002")
    form = {"csrf": csrf, "kind": "lameness", "at": "2026-09-02T10:30", "tz_offset": "-60"}
    response = client.post("/animals/P00002/events", data={**form, "value": "2", "scale": "0-3"})
    assert "recorded lameness for P00002" in response.text
    stored = current_events(site.record, "P00002", kind="lameness").to_pylist()[-1]
    assert stored["author"] == "vet-1" and stored["value"] == 2.0
    assert stored["at"].isoformat() == "2026-09-02T09:30:00+00:00"  # local 10:30 at UTC+1
    assert "2026-09-02 lameness 2 score (0-3)" in response.text


def test_an_invalid_event_is_explained_and_stores_nothing(site: Site) -> None:
    client = site.sign_in("vet")
    before = current_events(site.record).num_rows
    csrf = site.csrf("/animals/P00002")
    response = client.post(
        "/animals/P00002/events",
        data={"csrf": csrf, "kind": "lameness", "at": "2026-09-02T10:30", "value": "7"},
    )
    assert "the event was not recorded" in response.text
    assert "scale" in response.text
    assert current_events(site.record).num_rows == before


def test_forms_need_the_sessions_token_and_a_vet(site: Site) -> None:
    before = current_events(site.record).num_rows
    client = site.sign_in("vet")
    note = {"kind": "note", "at": "2026-09-02T10:30", "note": "from another site"}
    forged = client.post("/animals/P00002/events", data={**note, "csrf": "forged"})
    assert forged.status_code == 403 and "another site" in forged.text
    analyst = site.sign_in("analyst")
    csrf = site.csrf("/animals/P00002")
    refused = analyst.post("/animals/P00002/events", data={**note, "csrf": csrf})
    assert refused.status_code == 403 and "needs vet or admin" in refused.text
    assert "Add an event" not in analyst.get("/animals/P00002").text
    item = review_queue(site.record, 1)[0]
    answer = {
        "csrf": csrf,
        "action": "confirm",
        "device_id": item.tracklet.device_id,
        "track_id": item.tracklet.track_id,
    }
    assert analyst.post("/review/answer", data=answer).status_code == 403
    assert current_events(site.record).num_rows == before
    assert review_queue(site.record, 1)[0] == item


def test_cohort_runs_and_downloads_match_the_query(site: Site) -> None:
    client = site.sign_in("analyst")
    listing = client.get("/cohorts").text
    for name in ("growth", "lameness", "disease", "lookalikes"):
        assert f"/cohorts?query={name}" in listing
    form = client.get("/cohorts?query=growth").text
    for param in ("days", "as_of", "slow_percentile", "min_days"):
        assert f'name="{param}"' in form  # a field per parameter of the query's header
    assert 'type="date" name="as_of"' in form and 'min="7" max="365"' in form
    page = client.get("/cohorts?query=growth&run=1")
    expected = run_query(site.record, "growth", {})
    assert f"{expected.num_rows} rows" in page.text
    if "animal_id" in expected.column_names and expected.num_rows:
        first = expected.column("animal_id")[0].as_py()
        assert f'href="/animals/{first}"' in page.text
    csv = client.get("/cohorts/download?query=growth&format=csv")
    assert csv.headers["content-disposition"] == 'attachment; filename="growth.csv"'
    assert pcsv.read_csv(io.BytesIO(csv.content)).num_rows == expected.num_rows
    parquet = client.get("/cohorts/download?query=growth&format=parquet")
    assert pq.read_table(io.BytesIO(parquet.content)).equals(expected)


def test_cohort_parameter_problems_are_shown(site: Site) -> None:
    client = site.sign_in("vet")
    page = client.get("/cohorts?query=lookalikes&run=1")
    assert 'id="problem"' in page.text and "animal is required" in page.text
    assert client.get("/cohorts?query=nope").status_code == 404


def test_review_answer_from_the_page_changes_the_history(site: Site) -> None:
    client = site.sign_in("vet")
    queue = review_queue(site.record, 50)
    item = next(i for i in queue if i.animal_id)
    key = f"{item.tracklet.device_id}:{item.tracklet.track_id}"
    page = client.get(f"/review?item={key}").text
    assert f'data-track="{key}"' in page
    others = re.findall(r'name="action" value="reassign">.*?name="animal_id" value="([^"]+)"', page)
    assert others, "the page offers other candidates"
    csrf = site.csrf(f"/review?item={key}")
    response = client.post(
        "/review/answer",
        data={
            "csrf": csrf,
            "action": "reassign",
            "device_id": item.tracklet.device_id,
            "track_id": item.tracklet.track_id,
            "animal_id": others[0],
        },
    )
    assert f"reassign: {key} → " in response.text
    entries = [e for e in history(site.record, others[0]) if e.current]
    assert any(e.tracklet == item.tracklet and e.method == "review" for e in entries)
    assert key not in [
        f"{i.tracklet.device_id}:{i.tracklet.track_id}" for i in review_queue(site.record, 50)
    ]
    animal_page = client.get(f"/animals/{others[0]}").text
    row = re.search(
        rf'<tr data-track="{key}" data-method="review"[^>]*>(.*?)</tr>', animal_page, re.S
    )
    assert row is not None and "vet-1" in row.group(1)


def test_names_and_notes_are_escaped_in_pages(site: Site) -> None:
    item = review_queue(site.record, 50)[-1]
    outcome = enrol_new(site.record, [item.tracklet], "test", "<script>alert(1)</script>")
    animal_id = outcome.animals[0]
    client = site.sign_in("vet")
    csrf = site.csrf(f"/animals/{animal_id}")
    posted = client.post(
        f"/animals/{animal_id}/events",
        data={
            "csrf": csrf,
            "kind": "diagnosis",
            "code": "<i>PRRS</i>",
            "at": "2026-09-02T10:30",
            "tz_offset": "0",
            "note": "</title><script>alert(2)</script>",
        },
    )
    assert "<script>alert" not in posted.text and "PRRS" in posted.text, posted.text[-2000:]
    herd = client.get(f"/herd?q={animal_id}", follow_redirects=True).text
    animal = client.get(f"/animals/{animal_id}").text
    review = client.get("/review").text
    for page in (herd, animal, review):
        assert "<script>alert" not in page and "<i>PRRS" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in herd
    assert "&lt;/title&gt;&lt;script&gt;alert(2)" in animal  # the list and the chart markers
    assert animal.count("&lt;i&gt;PRRS&lt;/i&gt;") >= 2


def test_the_review_actions_from_the_page(tmp_path: Path) -> None:
    with fresh_site(tmp_path) as (client, record, csrf):
        first = next(i for i in review_queue(record, 50) if i.animal_id)

        def answer(action: str, item: Any, **more: str) -> str:
            ref = {"device_id": item.tracklet.device_id, "track_id": item.tracklet.track_id}
            data = {"csrf": csrf, "action": action, **ref, **more}
            return client.post("/review/answer", data=data).text

        assert "confirm: " in answer("confirm", first)
        confirmed = [e for e in history(record, str(first.animal_id)) if e.current]
        assert any(e.tracklet == first.tracklet and e.method == "review" for e in confirmed)
        assert first.tracklet not in [i.tracklet for i in review_queue(record, 50)]
        unknown = next(i for i in review_queue(record, 10_000) if i.animal_id is None)
        page = answer("new", unknown, name="Newcomer")
        assert (
            "new: " in page
            and "Newcomer" in client.get("/herd?q=Newcomer", follow_redirects=True).text
        )
        assert unknown.tracklet not in [i.tracklet for i in review_queue(record, 50)]
        owner = "P00003"
        split_off = next(e for e in history(record, owner) if e.current and e.method == "auto")
        assert "split: " in answer("split", split_off, name="Split-Off")
        now_linked = [e for e in history(record, owner) if e.current and e.animal_id == owner]
        assert split_off.tracklet not in [e.tracklet for e in now_linked]


def test_same_animal_merges_the_newer_id_and_settles_the_item(tmp_path: Path) -> None:
    with fresh_site(tmp_path) as (client, record, csrf):
        queue = review_queue(record, 10_000)
        # (pen-1: in pen-2 the stray is seen beside every pig, so no newcomer there merges)
        item = next(i for i in queue if i.animal_id and i.pen_id == "pen-1")
        # Another fragment of the same animal, taken for a newcomer: one animal, two ids.
        fragment = next(
            e.tracklet
            for e in history(record, str(item.animal_id))
            if e.current and e.animal_id == item.animal_id and e.tracklet != item.tracklet
        )
        newcomer = enrol_new(record, [fragment], "test").animals[0]
        ref = {"device_id": item.tracklet.device_id, "track_id": item.tracklet.track_id}
        page = client.post(
            "/review/answer",
            data={"csrf": csrf, "action": "merge", "animal_id": newcomer, **ref},
        ).text
        # The linked animal was enrolled by linking (provisional), the newcomer by a person:
        # the person's id is kept, the provisional one goes.
        assert get_animal(record, str(item.animal_id)).provisional
        kept, gone = newcomer, str(item.animal_id)
        key = f"{item.tracklet.device_id}:{item.tracklet.track_id}"
        notes = re.findall(r'<p class="note"[^>]*>(.*?)</p>', page)
        assert any(f"merge: {key} → {kept}, {gone}" in n for n in notes), notes
        moved = client.get(f"/animals/{gone}", follow_redirects=False)
        assert moved.headers["location"] == f"/animals/{kept}"
        assert f"{gone} was merged into {kept}" in client.get(f"/animals/{kept}").text
        assert item.tracklet not in [i.tracklet for i in review_queue(record, 50)]


def test_an_empty_record_renders_every_page(tmp_path: Path) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), service_settings(path))
    _, key = add_key(record, "vet-5", "vet", "test")
    with TestClient(create_app(service_settings(path)), base_url="https://testserver") as client:
        client.post("/sign-in", data={"key": key})
        assert "No animals match" in client.get("/herd").text
        assert "Nothing to review" in client.get("/review").text
        assert "0 rows" in client.get("/cohorts?query=growth&run=1").text


def test_odd_form_and_date_input_is_refused_cleanly(site: Site) -> None:
    client = site.sign_in("vet")
    before = current_events(site.record).num_rows
    note = {"kind": "note", "at": "2026-09-02T10:30", "note": "x"}
    odd = client.post("/animals/P00002/events", data={**note, "csrf": "é" * 10})
    assert odd.status_code == 403
    csrf = site.csrf("/animals/P00002")
    no_zone = client.post("/animals/P00002/events", data={**note, "csrf": csrf})
    assert "did not say its time zone" in no_zone.text
    assert current_events(site.record).num_rows == before
    for query in ("to=0001-01-01", "from=9999-12-31", "from=2026-09-03&to=2026-09-01"):
        response = client.get(f"/animals/P00002?{query}")
        assert response.status_code == 422, query
    later = client.get("/animals/P00002?from=2026-12-01")  # after its last day: still a page
    assert later.status_code == 200 and "0 days with records" in later.text


def test_pages_serve_only_local_assets(site: Site) -> None:
    client = site.sign_in("vet")
    for page in (*PAGES, "/animals/NOPE"):
        response = client.get(page)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src 'self';" in policy  # no inline script, nothing from elsewhere
        assert response.headers["cache-control"] == "no-store"
        html = response.text
        assert " on" + "change=" not in html and "<script>" not in html
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert url.startswith(("/", "?", "#")), f"{page} loads {url}"
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def _year(animal: str = "A") -> list[dict[str, Any]]:
    first = date(2026, 1, 1)
    return [
        {
            "day": first + timedelta(days=i),
            "weight_est_kg": 30.0 + i * 0.5,
            "observed_min": 760.0 + i % 7,
            "scale_weight_kg": 31.0 + i * 0.5 if i % 30 == 0 else None,
            "behaviour_min": [
                {"behaviour": "lying_sternal", "minutes": 600.0},
                {"behaviour": "eating", "minutes": 100.0 + i % 7},
                {"behaviour": "walking", "minutes": 60.0},
            ],
            "anomalies": ["lying_up"] if i in (100, 101, 200) else [],
        }
        for i in range(365)
    ]


def test_charts_of_a_year_stay_within_their_mark_budget() -> None:
    rows = _year()
    start, end = rows[0]["day"], rows[-1]["day"]
    growth = str(growth_chart(rows, [], start, end, coverage_floor_h=6.0))
    points = re.search(r'<polyline class="estimate" points="([^"]+)"', growth)
    assert points is not None and len(points.group(1).split()) <= GROWTH_POINTS
    assert growth.count('class="scale"') == 13  # every scale weight is drawn
    assert growth.count('class="anomaly"') == 2  # days 100-101 are one band, 200 another
    behaviours = ["lying_sternal", "eating", "walking"]
    budget = str(budget_chart(rows, behaviours, [], start, end, coverage_floor_h=6.0))
    assert budget.count('class="bar"') <= BUDGET_BARS * len(behaviours)
    assert budget.count('class="bar"') == 92 * len(behaviours)  # 4-day buckets
    shares = [
        float(s) for s in re.findall(r"lying_sternal [\d.]+ h of [\d.]+ h observed, (\d+)%", budget)
    ]
    assert all(75 <= s <= 80 for s in shares)  # 600 of ~763 minutes


def test_a_month_draws_every_day() -> None:
    rows = _year()[:30]
    budget = str(
        budget_chart(
            rows,
            ["lying_sternal", "eating", "walking"],
            [],
            rows[0]["day"],
            rows[-1]["day"],
            coverage_floor_h=6.0,
        )
    )
    assert budget.count('class="bar"') == 30 * 3
    assert "2026-01-05: eating" in budget


def test_a_partial_day_looks_partial_and_moves_no_line() -> None:
    rows = _year()[:10]
    # Day 5 was observed for 3.1 h, and its estimate from a few standing frames is 10 kg low.
    rows[5] = {
        **rows[5],
        "observed_min": 186.0,
        "behaviour_min": [{"behaviour": "lying_sternal", "minutes": 186.0}],
        "weight_est_kg": rows[5]["weight_est_kg"] - 10,
    }
    start, end = rows[0]["day"], rows[-1]["day"]
    behaviours = ["lying_sternal", "eating", "walking"]
    budget = str(budget_chart(rows, behaviours, [], start, end, coverage_floor_h=6.0))
    heights: dict[str, float] = {}
    bars = re.findall(r'<rect class="(bar[^"]*)" x="[\d.]+" y="[\d.]+" width="[\d.]+" '
                      r'height="([\d.]+)" fill="[^"]+"><title>(\S+):', budget)  # fmt: skip
    for klass, height, day in bars:
        heights[day] = heights.get(day, 0.0) + float(height)
        assert ("partial" in klass) == (day == str(rows[5]["day"]))
    whole = heights[str(rows[4]["day"])]
    # Bars are as tall as the hours observed: 3.1 h against 12.7 h.
    assert heights[str(rows[5]["day"])] == pytest.approx(whole * 186 / 764, rel=0.02)
    assert "3.1 h observed (partial day)" in budget
    growth = str(growth_chart(rows, [], start, end, coverage_floor_h=6.0))
    points = re.search(r'<polyline class="estimate" points="([^"]+)"', growth)
    assert points is not None and len(points.group(1).split()) == 9  # the partial day is off it
    ys = [float(p.split(",")[1]) for p in points.group(1).split()]
    assert ys == sorted(ys, reverse=True)  # the line still only rises: no 10 kg dip
    hollow = re.findall(r'<circle class="partial"[^>]*><title>([^<]+)</title>', growth)
    assert hollow == [f"{rows[5]['day']}: 22.5 kg estimated from a partial day (3.1 h observed); "
                      "not part of the line"]  # fmt: skip


def _herd_row(html: str, animal_id: str) -> str:
    row = re.search(rf'<tr data-animal="{animal_id}">(.*?)</tr>', html, re.S)
    assert row is not None, animal_id
    return row.group(1)


def test_herd_chips_only_lameness_scores_that_need_a_look(tmp_path: Path) -> None:
    with fresh_site(tmp_path) as (client, record, _):
        scores = [("P00001", 0, "0-3"), ("P00002", 1, "0-3"), ("P00003", 2, "0-3")]
        scores += [("P00004", 2, "1-5"), ("P00005", 3, "1-5")]
        add_events(
            record,
            [
                parse_event(
                    {
                        "animal_id": a,
                        "kind": "lameness",
                        "at": "2026-09-03T09:00:00Z",
                        "value": v,
                        "scale": s,
                        "unit": "score",
                        "author": "vet",
                    }
                )
                for a, v, s in scores
            ],
        )
        page = client.get("/herd").text
        chips = {
            a: re.findall(r'data-kind="lameness"[^>]*>([^<]+)<', _herd_row(page, a))
            for a, _, _ in scores
        }
        # Weekly scoring's 0s and 1s (and a 2 of 5) are no news; a 2 of 0-3 and a 3 of 1-5 are.
        assert chips == {
            "P00001": [],
            "P00002": [],
            "P00003": ["lameness 2 of 0-3"],
            "P00004": [],
            "P00005": ["lameness 3 of 1-5"],
        }


def test_herd_link_confidence_is_the_calibrated_probability(site: Site) -> None:
    page = site.sign_in("vet").get("/herd").text
    days = site.record.table("days").to_lance().to_table().to_pylist()
    last = {r["animal_id"]: r for r in sorted(days, key=lambda r: r["day"])}
    for animal_id, day in last.items():
        cell = re.search(r'<td class="confidence">(.*?)</td>', _herd_row(page, animal_id), re.S)
        assert cell is not None
        if day["link_confidence"] is None:
            assert cell.group(1).strip() == ""  # no probability yet: nothing shown
        else:
            shown = re.search(r"(\d+) %", cell.group(1))
            assert shown is not None and int(shown.group(1)) == round(100 * day["link_confidence"])
    # The simulated barn is linked right: probabilities near 1, not cosines of 0.4-0.5.
    shown = [int(p) for p in re.findall(r'<td class="confidence">.*?(\d+) %', page)]
    assert shown and min(shown) >= 90


def test_an_animal_a_tag_read_confirmed_is_no_longer_provisional(site: Site) -> None:
    rows = site.record.table("animals").to_lance().to_table().to_pylist()
    enrolled = [a for a in rows if a["provisional"] and a["status"] == "active"]  # by linking
    tagged = {a["animal_id"] for a in enrolled if a["tag_id"]}
    untagged = {a["animal_id"] for a in enrolled if not a["tag_id"]}
    assert tagged and untagged
    page = site.sign_in("vet").get("/herd").text
    for animal_id in tagged:
        assert "provisional" not in _herd_row(page, animal_id)
    for animal_id in untagged:  # no tag read: only a person's name ends it
        assert "provisional" in _herd_row(page, animal_id)
    key = {"Authorization": f"Bearer {site.keys['vet']}"}
    animal = min(tagged)
    tag = next(a["tag_id"] for a in enrolled if a["animal_id"] == animal)
    shown = site.client.get(f"/v1/animals/{animal}", headers=key).json()
    assert shown["provisional"] is False and shown["tag_id"] == tag
    confirmed = datetime.fromisoformat(shown["identity_confirmed_at"])
    # The history says so: the tracklet that read its tag, at that moment, is linked to it.
    read = site.record.table("tracklets").to_lance().to_table(filter=f"tag_id = '{tag}'")
    first = min(read.to_pylist(), key=lambda t: t["start"])
    assert first["start"] == confirmed
    entries = history(site.record, animal)
    assert any(e.current and e.tracklet.track_id == first["track_id"] for e in entries)
    animal_page = site.client.get(f"/animals/{animal}").text
    stamp = confirmed.strftime("%Y-%m-%d %H:%M")
    assert f"identity confirmed by a tag read of {tag} on {stamp} UTC" in animal_page
    track = f"{first['device_id']}:{first['track_id']}"
    row = re.search(rf'<tr data-track="{re.escape(track)}"[^>]*>(.*?)</tr>', animal_page, re.S)
    assert row is not None and f"tag read {tag}: identity confirmed" in row.group(1)
    assert "(provisional)" not in animal_page
    assert get_animal(site.record, sorted(untagged)[0]).provisional


def test_a_day_derived_before_schema_4_shows_no_cosine_as_confidence(tmp_path: Path) -> None:
    record = _barn(tmp_path / "herd")
    shown = [a.link_confidence for p in herd_overview(record).pens for a in p.animals]
    assert any(c is not None for c in shown)
    # As on a record migrated to schema 4 after its days were derived: they hold cosines.
    later = datetime.now(UTC) + timedelta(days=1)
    record.table("migrations").update(where="version = 4", values={"applied_at": later})
    shown = [a.link_confidence for p in herd_overview(record).pens for a in p.animals]
    assert shown and all(c is None for c in shown)
