"""The edge intake journal and `herdrecord push`.

A power cut is simulated by putting the record's tables back as they were before a commit
(Lance never synced it) while the journal, fsynced before the acknowledgement, stays. Then:
an acknowledged upload is stored again exactly once; a SIGKILLed ingest is replayed by the
next one; rejected batches are never kept; the service journals before it answers and
replays on start. Push delivers the outbox to a real `herdrecord serve` on loopback: once,
however often it runs or is killed, retrying a service that is down, not retrying a refusal.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import make_batch, service_settings, write_json
from herdrecord.api.keys import add_key
from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.contract.parquet import bulk_table_from_json
from herdrecord.errors import PushFailed
from herdrecord.ingest import replay
from herdrecord.ingest.ingestor import BatchOutcome, ingest
from herdrecord.ingest.journal import (
    JOURNAL_FILE,
    Journal,
    Received,
    journal_bytes,
    open_journal,
)
from herdrecord.ingest.pipeline import ingest_batches
from herdrecord.ingest.push import PushClock, PushPolicy, PushReport, Retry, push_outbox
from herdrecord.ingest.replay import FileIntake, commit_journalled, replay_journal
from herdrecord.ingest.sources import parse_json
from herdrecord.server import create_app
from herdrecord.store.record import Record, create_record, open_record
from servers import start_server, stop_server

runner = CliRunner()
SETTINGS = Settings(lock_timeout_s=10.0)
U64_MAX = 2**64 - 1


def _batch(device: str, i: int, **changes: Any) -> dict[str, Any]:
    """Return a small valid batch: one tracklet, its own track id, no tag."""
    batch = make_batch(
        f"{device}/{i:03d}", device_id=device, n_tracklets=1, track_offset=i, **changes
    )
    batch["tracklets"][0]["tag_id"] = None
    return batch


def _files(folder: Path, batches: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for batch in batches:
        write_json(batch, folder / (batch["batch_id"].replace("/", "_") + ".json"))
    return folder


def _copy_tables(path: Path, dest: Path) -> Path:
    """Copy the record's files, less its journal (what was on disk before a commit)."""
    shutil.copytree(path, dest, ignore=shutil.ignore_patterns(JOURNAL_FILE + "*"))
    return dest


def _power_cut(path: Path, before: Path) -> None:
    """Put the record's files back as they were at `before` (the Lance commits since never
    reached the disk), keeping the journal (fsynced before each acknowledgement)."""
    for item in path.iterdir():
        if item.name.startswith(JOURNAL_FILE):
            continue
        if item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink()
    shutil.copytree(before, path, dirs_exist_ok=True)


def _drop_versions_after(path: Path, versions: dict[str, int]) -> None:
    """Delete every table version newer than `versions` (their manifests never reached the
    disk); the data files they named stay behind, unreferenced."""
    for name, before in versions.items():
        folder = path / f"{name}.lance" / "_versions"
        for manifest in folder.glob("*.manifest"):
            number = int(manifest.stem)
            version = number if number < 2**63 else U64_MAX - number  # either naming scheme
            if version > before:
                manifest.unlink()
        (folder / "latest_version_hint.json").unlink(missing_ok=True)


def _versions(record: Record) -> dict[str, int]:
    return {info.name: info.version for info in record.table_info()}


def _ledger(path: Path) -> list[str]:
    return sorted(open_record(str(path), SETTINGS).committed_batch_ids().to_pylist())


def _tracklet_rows(path: Path) -> int:
    return int(open_record(str(path), SETTINGS).table("tracklets").count_rows())


def _journal_column(path: Path, column: str) -> list[Any]:
    """Read one column of the journal as another process sees it (plain SQLite); nothing
    while the journal is not made yet."""
    if not (path / JOURNAL_FILE).exists():
        return []
    db = sqlite3.connect(path / JOURNAL_FILE, timeout=10)
    try:
        rows = db.execute(f"SELECT {column} FROM entries ORDER BY entry_id").fetchall()
    except sqlite3.OperationalError:  # the table is being made
        return []
    finally:
        db.close()
    return [row[0] for row in rows]


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"the process ended before {what}"
        assert time.monotonic() < deadline, f"no {what} in 60 s"
        time.sleep(0.01)


# --- durability ---------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["tables restored", "newest versions dropped"])
def test_an_acknowledged_upload_survives_a_power_cut(tmp_path: Path, cut: str) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), SETTINGS)
    before, versions = _copy_tables(path, tmp_path / "before"), _versions(record)
    body = json.dumps(_batch("dev-01", 0)).encode()
    journal = open_journal(record)
    assert journal is not None
    received = Received("upload by edge-1", "application/json", "", body)
    [[outcome]] = commit_journalled(
        record, journal, [[parse_json(body, received.source)]], [received]
    )
    assert outcome.status == "accepted"  # acknowledged from here on
    [entry] = journal.entries()
    assert (entry.state, entry.durable, entry.batch_ids) == ("committed", False, ("dev-01/000",))
    assert journal.body(entry.entry_id) == body
    journal.close()

    if cut == "tables restored":
        _power_cut(path, before)
    else:
        _drop_versions_after(path, versions)
    assert _ledger(path) == []  # the commit is gone

    record = open_record(str(path), SETTINGS)
    journal = open_journal(record)
    assert journal is not None
    replayed = replay_journal(record, journal)
    assert (replayed.entries, [o.status for o in replayed.outcomes]) == (1, ["accepted"])
    again = replay_journal(record, journal)  # not yet synced: replayed again, as a duplicate
    assert [o.status for o in again.outcomes] == ["duplicate"]
    assert journal.make_durable() == 1
    assert journal.entries() == [] and replay_journal(record, journal).entries == 0
    journal.close()
    assert _ledger(path) == ["dev-01/000"]
    assert _tracklet_rows(path) == 1  # stored once, whichever way the commit was lost


def test_rejected_batches_are_not_journalled_and_a_bulk_file_keeps_what_was_stored(
    record: Record, tmp_path: Path
) -> None:
    good = write_json(_batch("dev-01", 0), tmp_path / "good.json")
    bad = write_json(_batch("dev-01", 1, dim=8), tmp_path / "bad.json")
    mixed = tmp_path / "mixed.parquet"
    pq.write_table(bulk_table_from_json([_batch("dev-02", 0), _batch("dev-02", 1, dim=8)]), mixed)
    journal = open_journal(record)
    assert journal is not None
    intake = FileIntake(journal, record.settings)
    report = ingest(record, intake.files([good, bad, mixed], lambda: None), intake.outcome)
    assert [o.status for o in report.outcomes] == ["accepted", "rejected", "accepted", "rejected"]
    entries = journal.entries()
    assert [(e.source, e.state, e.batch_ids) for e in entries] == [
        (str(good), "committed", ("dev-01/000",)),
        (str(mixed), "committed", ("dev-02/000",)),
    ]
    kept = pq.read_table(io.BytesIO(journal.body(entries[1].entry_id)))
    assert set(kept.column("batch_id").to_pylist()) == {"dev-02/000"}  # what was acknowledged
    assert journal.make_durable() == 2 and journal.entries() == []
    journal.close()


def test_an_entry_that_cannot_be_replayed_is_set_aside_and_the_rest_are_replayed(
    record: Record, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(record)
    assert journal is not None
    bodies = [json.dumps(_batch("dev-01", i)).encode() for i in range(3)]
    journal.add([Received("upload by edge-1", "application/json", "", b) for b in bodies])
    write_uploads = replay.write_uploads

    def failing_disk(record: Record, uploads: Any, known: Any = None) -> Any:
        if any(c.batch_id == "dev-01/001" for upload in uploads for c in upload):
            raise OSError(5, "Input/output error")
        return write_uploads(record, uploads, known)

    monkeypatch.setattr(replay, "write_uploads", failing_disk)
    replayed = replay_journal(record, journal)
    assert [o.batch_id for o in replayed.outcomes] == ["dev-01/000", "dev-01/002"]
    assert [e.state for e in journal.entries()] == ["committed", "failed", "committed"]
    assert "Input/output error" in (journal.entries()[1].message or "")
    assert replay_journal(record, journal).entries == 2  # the failed one is not tried again
    assert sorted(record.committed_batch_ids().to_pylist()) == ["dev-01/000", "dev-01/002"]
    journal.close()


def test_a_killed_ingest_is_replayed_by_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "herd"
    create_record(str(path), SETTINGS)
    batches = [_batch("dev-01", i) for i in range(30)]
    folder = _files(tmp_path / "batches", batches)
    before = _copy_tables(path, tmp_path / "before")
    process = subprocess.Popen(
        [sys.executable, "-m", "herdrecord", "ingest", str(path), str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HERDRECORD_WRITE_GROUP_ROWS": "1"},
    )
    try:
        _wait_for(
            lambda: (
                (path / JOURNAL_FILE).exists()
                and _journal_column(path, "state").count("committed") >= 3
            ),
            process,
            "committed batches",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert len(_journal_column(path, "entry_id")) == 30  # journalled before they were offered
    _power_cut(path, before)  # and then the power went too

    extra = write_json(_batch("dev-01", 30), tmp_path / "extra.json")
    result = runner.invoke(app, ["ingest", str(path), str(extra)])
    assert result.exit_code == 0, result.output
    assert "replayed 30 journalled uploads" in result.output
    ledger = _ledger(path)
    assert ledger == sorted(b["batch_id"] for b in [*batches, _batch("dev-01", 30)])
    assert _tracklet_rows(path) == 31  # every batch exactly once
    assert _journal_column(path, "entry_id") == []  # synced, then cleared


def test_the_service_journals_each_upload_and_clears_it_on_a_clean_stop(tmp_path: Path) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), SETTINGS)
    key = add_key(record, "edge-1", "edge", "test")[1]
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(service_settings(path, journal_sync_s=3600.0))) as client:
        assert client.post("/v1/batches", json=_batch("dev-01", 0), headers=headers).is_success
        refused = client.post("/v1/batches", json=_batch("dev-01", 1, dim=8), headers=headers)
        assert refused.status_code == 422
        assert _journal_column(path, "state") == ["committed"]  # not the refused one
        assert _journal_column(path, "durable") == [0]
    assert _journal_column(path, "entry_id") == []  # the stop synced the record


def test_the_service_journals_before_acknowledging_and_replays_on_start(tmp_path: Path) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), SETTINGS)
    key = add_key(record, "edge-1", "edge", "test")[1]
    before = _copy_tables(path, tmp_path / "before")
    batch = _batch("dev-01", 0)
    body = gzip.compress(json.dumps(batch).encode())
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    url, process = start_server(path, tmp_path / "serve.log", HERDRECORD_JOURNAL_SYNC_S="3600")
    try:
        created = httpx.post(f"{url}/v1/batches", content=body, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        journal = Journal(path / JOURNAL_FILE, outbox=False)
        [entry] = journal.entries()  # there when the answer came
        assert (entry.state, entry.durable, entry.content_encoding) == ("committed", False, "gzip")
        assert journal.body(entry.entry_id) == body
        journal.close()
    finally:
        process.send_signal(signal.SIGKILL)  # no clean stop, no sync: the power went
        process.wait()
    _power_cut(path, before)
    assert _ledger(path) == []

    url, process = start_server(path, tmp_path / "serve-2.log")
    try:
        assert _ledger(path) == ["dev-01/000"]  # replayed before the service took uploads
        assert _journal_column(path, "entry_id") == []
        again = httpx.post(f"{url}/v1/batches", content=body, headers=headers, timeout=30)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
    finally:
        stop_server(process)
    assert _tracklet_rows(path) == 1


# --- push -------------------------------------------------------------------------------


@dataclass
class Central:
    """A central herdrecord service on loopback, with an edge key."""

    url: str
    path: Path
    key: str
    log: Path

    def ledger(self, device: str) -> list[str]:
        return [b for b in _ledger(self.path) if b.startswith(device + "/")]

    def answers(self, status: int) -> int:
        return self.log.read_text().count(f'"POST /v1/batches HTTP/1.1" {status}')


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    folder = tmp_path_factory.mktemp("central")
    path = folder / "herd"
    record = create_record(str(path), SETTINGS)
    key = add_key(record, "barn-3-jetson", "edge", "test")[1]
    log = folder / "serve.log"
    url, process = start_server(path, log, HERDRECORD_API_LINK_IDLE_S="3600")
    try:
        yield Central(url, path, key, log)
    finally:
        stop_server(process)


def _edge(folder: Path, batches: list[dict[str, Any]]) -> Path:
    """Return an edge record with an outbox that ingested `batches` through the CLI."""
    path = folder / "edge"
    create_record(str(path), SETTINGS)
    files = _files(folder / "outgoing", batches)
    env = {"HERDRECORD_EDGE_OUTBOX": "true"}
    result = runner.invoke(app, ["ingest", str(path), str(files)], env=env)
    assert result.exit_code == 0, result.output
    return path


def _push(edge: Path, central: Central, *more: str) -> Any:
    return runner.invoke(app, ["push", str(edge), "--to", central.url, "--key", central.key, *more])


def test_push_delivers_every_upload_once_and_a_second_push_sends_nothing(
    tmp_path: Path, central: Central
) -> None:
    batches = [_batch("dev-p", i) for i in range(3)]
    edge = _edge(tmp_path, batches)
    assert _journal_column(edge, "push") == ["waiting"] * 3  # kept: the outbox is on
    nokey = runner.invoke(app, ["push", str(edge), "--to", central.url])
    assert nokey.exit_code == 2 and "no key to push with" in nokey.output
    first = _push(edge, central)
    assert first.exit_code == 0, first.output
    assert "3 uploads pushed (3 batches stored, 0 already there)" in first.output
    assert central.ledger("dev-p") == [b["batch_id"] for b in batches]
    assert _journal_column(edge, "entry_id") == []  # durable here and pushed: cleared
    second = _push(edge, central)
    assert second.exit_code == 0 and "0 uploads pushed" in second.output
    assert central.ledger("dev-p") == [b["batch_id"] for b in batches]


def test_a_refused_upload_is_reported_and_not_sent_again(tmp_path: Path, central: Central) -> None:
    central_record = open_record(str(central.path), SETTINGS)
    other = json.dumps(_batch("dev-r", 0, seed=5)).encode()  # same id, other content
    assert ingest(central_record, [parse_json(other, "elsewhere")]).count("accepted") == 1
    edge = _edge(tmp_path, [_batch("dev-r", 0), _batch("dev-r", 1)])
    refusals = central.answers(422)
    pushed = _push(edge, central)
    assert pushed.exit_code == 1
    assert "refused dev-r/000 (422)" in pushed.output
    assert "different content" in pushed.output
    assert "1 uploads pushed (1 batches stored" in pushed.output  # the next one still went
    assert central.answers(422) == refusals + 1  # tried once, not retried
    again = _push(edge, central)
    assert again.exit_code == 0 and "0 uploads pushed" in again.output
    assert central.answers(422) == refusals + 1
    assert _journal_column(edge, "push") == ["refused"]
    shown = runner.invoke(app, ["journal", str(edge)])
    assert "1 refused" in shown.output and "different content" in shown.output


def test_a_push_killed_midway_and_run_again_duplicates_nothing(
    tmp_path: Path, central: Central
) -> None:
    batches = [_batch("dev-k", i) for i in range(40)]
    edge = _edge(tmp_path, batches)
    process = subprocess.Popen(
        [sys.executable, "-m", "herdrecord", "push", str(edge), "--to", central.url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HERDRECORD_PUSH_KEY": central.key},
    )
    try:
        _wait_for(
            lambda: _journal_column(edge, "push").count("pushed") >= 3, process, "pushed uploads"
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert "waiting" in _journal_column(edge, "push")  # killed midway
    rerun = _push(edge, central)
    assert rerun.exit_code == 0, rerun.output
    ledger = central.ledger("dev-k")
    assert ledger == [b["batch_id"] for b in batches]  # each once (the ledger has no repeats)
    tracklets = open_record(str(central.path), SETTINGS).read_visible(
        "tracklets", ["batch_id"], "device_id = 'dev-k'"
    )
    assert tracklets.num_rows == len(batches)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_push_retries_until_the_central_service_comes_up(tmp_path: Path) -> None:
    path = tmp_path / "central"
    key = add_key(create_record(str(path), SETTINGS), "edge-1", "edge", "test")[1]
    edge = _edge(tmp_path, [_batch("dev-u", i) for i in range(2)])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    retries: list[Retry] = []
    reports: list[PushReport] = []
    journal = Journal(edge / JOURNAL_FILE, outbox=True)
    policy = PushPolicy(attempts=50, deadline_s=120, backoff_s=0.2, timeout_s=30)
    pusher = threading.Thread(
        target=lambda: reports.append(
            push_outbox(journal, url, key, policy, on_retry=retries.append)
        )
    )
    pusher.start()
    time.sleep(1.0)  # a few refused connections first
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "herdrecord", "serve", str(path), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "HERDRECORD_API_LINK_IDLE_S": "3600"},
        )
    try:
        pusher.join(timeout=120)
        assert not pusher.is_alive()
    finally:
        stop_server(process)
        journal.close()
    [report] = reports
    assert (report.count("pushed"), report.left, report.stopped) == (2, 0, None)
    assert retries and all("cannot reach" in r.reason for r in retries)
    assert _ledger(path) == ["dev-u/000", "dev-u/001"]


# --- the retry policy, against scripted answers ---------------------------------------------


@dataclass
class _FakeTime:
    """A clock that moves only when slept on."""

    now: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> PushClock:
        return PushClock(sleep=self.sleep, monotonic=lambda: self.now, random=lambda: 0.5)


def _outbox(tmp_path: Path, n: int = 1) -> Journal:
    journal = Journal(tmp_path / JOURNAL_FILE, outbox=True)
    for i in range(n):
        body = json.dumps({"batch_id": f"b{i}"}).encode()
        [entry_id] = journal.add([Received("test", "application/json", "", body)])
        journal.settle([(entry_id, [BatchOutcome("test", f"b{i}", "accepted")])])
    return journal


def _scripted(answers: list[httpx.Response | Exception]) -> tuple[httpx.MockTransport, list[Any]]:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), sent


def _error(status: int, message: str, **headers: str) -> httpx.Response:
    body = {"error": {"status": status, "code": None, "message": message, "problems": []}}
    return httpx.Response(status, json=body, headers=headers)


def test_push_backs_off_with_jitter_and_honours_retry_after(tmp_path: Path) -> None:
    journal = _outbox(tmp_path)
    transport, sent = _scripted(
        [
            httpx.ConnectError("refused"),
            _error(502, "bad gateway"),
            _error(503, "shutting down", **{"Retry-After": "7"}),
            _error(429, "slow down", **{"Retry-After": "2"}),
            httpx.Response(201, json={"status": "accepted", "batches": [{"status": "accepted"}]}),
        ]
    )
    fake, retries = _FakeTime(), []
    report = push_outbox(
        journal,
        "http://central",
        "hr_key",
        PushPolicy(attempts=8, deadline_s=100, backoff_s=1.0),
        on_retry=retries.append,
        transport=transport,
        clock=fake.clock(),
    )
    assert [r.wait_s for r in retries] == [0.75, 1.5, 7.0, 2.0]  # jittered doubling, then asked
    assert (report.count("pushed"), report.left) == (1, 0)
    assert len(sent) == 5 and all(r.url == "http://central/v1/batches" for r in sent)
    assert sent[0].headers["Authorization"] == "Bearer hr_key"
    journal.close()


def test_push_stops_at_its_bounds_and_keeps_the_rest_in_order(tmp_path: Path) -> None:
    journal = _outbox(tmp_path, n=2)
    transport, sent = _scripted([_error(500, "boom")])
    report = push_outbox(
        journal,
        "http://c",
        "k",
        PushPolicy(attempts=3),
        transport=transport,
        clock=_FakeTime().clock(),
    )
    assert len(sent) == 3 and report.left == 2  # the second upload waits behind the first
    assert report.stopped and "gave up after 3 tries" in report.stopped
    transport, sent = _scripted([_error(503, "later", **{"Retry-After": "1000"})])
    report = push_outbox(
        journal,
        "http://c",
        "k",
        PushPolicy(deadline_s=60),
        transport=transport,
        clock=_FakeTime().clock(),
    )
    assert len(sent) == 1 and report.stopped and "deadline" in report.stopped
    journal.close()


def test_push_marks_a_refusal_and_fails_clearly_on_a_refused_key(tmp_path: Path) -> None:
    journal = _outbox(tmp_path, n=2)
    transport, sent = _scripted([_error(401, "unknown key")])
    with pytest.raises(PushFailed, match="valid key of role edge"):
        push_outbox(journal, "http://c", "k", PushPolicy(), transport=transport)
    transport, sent = _scripted(
        [
            _error(422, "b0 rejected"),
            httpx.Response(200, json={"batches": [{"status": "duplicate"}]}),
        ]
    )
    report = push_outbox(journal, "http://c", "k", PushPolicy(), transport=transport)
    assert [(o.status, o.duplicate) for o in report.outcomes] == [("refused", 0), ("pushed", 1)]
    assert len(sent) == 2 and journal.waiting() == []
    assert [(e.push, e.push_message) for e in journal.entries()] == [
        ("refused", "b0 rejected"),
        ("pushed", None),
    ]
    journal.close()


def test_the_journal_gives_its_space_back_once_its_entries_are_released(
    record: Record, batch_factory: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    # The demo left an 80 MB journal holding no entries: the incremental vacuum never ran
    # to the end. Forty files (over 5 MB) journalled, committed and released must leave it small.
    folder = tmp_path / "big"
    folder.mkdir()
    for n in range(40):
        batch = batch_factory(
            batch_id=f"dev-01/2026-{10 + n // 20}-{n % 20 + 1:02d}T06",
            n_tracklets=5,
            n_samples=9,
            track_offset=100 * n,
        )
        (folder / f"{n:02d}.json").write_text(json.dumps(batch))
    assert sum(f.stat().st_size for f in folder.iterdir()) > 5_000_000
    result = ingest_batches(record, [folder], link="never")
    assert result.count("accepted") == 40
    assert journal_bytes(record) < 500_000
    result = CliRunner().invoke(app, ["info", record.uri])
    assert "(intake journal)" in result.output
