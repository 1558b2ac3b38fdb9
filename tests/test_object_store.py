"""A record on object storage (s3://), against moto's S3 server on a loopback port: ingest,
link, check, query, SQL, export and the CLI work as on a local record, and the writer lock
is a conditional-write lease."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import deliver_day_by_day, make_batch, write_json
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput, RecordLocked
from herdrecord.ops.check import check_record
from herdrecord.query.cohorts import run_query
from herdrecord.query.export import export_parquet
from herdrecord.query.sandbox import run_sql
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.location import LOCK_FILE, ObjectLocation, ObjectLock
from herdrecord.store.record import INDEX_FILE, Record, create_record, open_record

SIM = SimulationConfig(
    animals=6, pens=1, days=2, seed=33, arrival_rate_per_day=0.0, obs_interval_s=300.0
)
runner = CliRunner()


def _settings(options: dict[str, str], **changes: object) -> Settings:
    base: dict[str, object] = {
        "storage_options": options,
        "retention_enabled": False,
        "lock_timeout_s": 5.0,
    }
    return Settings(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def barns(s3: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Record, Record]:
    """The same two simulated days delivered to a record on S3 and to a local one."""
    batches = simulate(SIM).batches
    remote = create_record("s3://herd/farms/farm-a", _settings(s3))
    deliver_day_by_day(remote, batches)
    local_dir = tmp_path_factory.mktemp("local") / "herd"
    local = create_record(str(local_dir), _settings({}))
    deliver_day_by_day(local, batches)
    return remote, local


def _animal_of(record: Record) -> dict[tuple[str, str], str | None]:
    links = current_links(record).to_pylist()
    return {(row["device_id"], row["track_id"]): row["animal_id"] for row in links}


def test_ingest_and_linking_on_s3_match_a_local_record(barns: tuple[Record, Record]) -> None:
    remote, local = barns
    assert remote.uri == "s3://herd/farms/farm-a"
    assert remote.location.local_path is None
    assert remote.committed_batch_ids().to_pylist() == local.committed_batch_ids().to_pylist()
    assert _animal_of(remote) == _animal_of(local)
    assert len(_animal_of(remote)) == remote.table("tracklets").count_rows() > 0
    # The re-ID index is stored beside the tables, in the bucket.
    assert remote.location.read(INDEX_FILE) is not None
    report = check_record(remote)
    assert report.problems == [], report.problems


def test_a_resent_batch_on_s3_is_a_duplicate(s3: dict[str, str]) -> None:
    from herdrecord.ingest.ingestor import ingest
    from herdrecord.ingest.sources import parse_json

    record = create_record("s3://herd/resend", _settings(s3))
    batch = make_batch(batch_id="cam-1/2026-09-01T08", device_id="cam-1", n_tracklets=3)
    body = json.dumps(batch).encode()
    first = ingest(record, [parse_json(body, "a")])
    second = ingest(record, [parse_json(body, "b")])
    assert [o.status for o in first.outcomes] == ["accepted"]
    assert [o.status for o in second.outcomes] == ["duplicate"]
    assert record.table("tracklets").count_rows() == 3
    assert record.location.read(".herdrecord.pending.json") is None


def test_queries_sql_and_export_read_a_record_on_s3(
    barns: tuple[Record, Record], tmp_path: Path
) -> None:
    remote, local = barns
    query = "SELECT animal_id, count(*) AS n FROM tracklets GROUP BY animal_id ORDER BY animal_id"
    assert run_sql(remote.uri, query, remote.settings).table.to_pylist() == (
        run_sql(local.uri, query, local.settings).table.to_pylist()
    )
    params = {"days": "7", "min_days": "2", "as_of": "2026-09-03"}
    assert (
        run_query(remote, "growth", params).num_rows == run_query(local, "growth", params).num_rows
    )
    result = export_parquet(remote, tmp_path / "out")
    days = pq.read_table(tmp_path / "out" / "days")
    assert days.num_rows == local.table("days").count_rows() > 0
    assert set(result.tables) >= {"tracklets", "days", "animals"}


def test_the_cli_works_on_an_s3_record(
    s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERDRECORD_STORAGE_OPTIONS", json.dumps(s3))
    uri = "s3://herd/cli"
    made = runner.invoke(cli_app, ["init", uri, "--farm", "farm-b"])
    assert made.exit_code == 0, made.output
    assert "s3://herd/cli" in made.output
    batch = {**make_batch(batch_id="cam-1/2026-09-02T08", device_id="cam-1"), "farm_id": "farm-b"}
    batch_file = write_json(batch, tmp_path / "b.json")
    ingested = runner.invoke(cli_app, ["ingest", uri, str(batch_file)])
    assert ingested.exit_code == 0, ingested.output
    assert "1 accepted" in ingested.output
    checked = runner.invoke(cli_app, ["check", uri])
    assert checked.exit_code == 0, checked.output
    info = runner.invoke(cli_app, ["info", uri])
    assert info.exit_code == 0 and "tracklets" in info.output
    # What needs a local directory says so in one line.
    backup = runner.invoke(cli_app, ["backup", uri, str(tmp_path / "bk")])
    assert backup.exit_code != 0
    assert "object storage" in backup.output and "Traceback" not in backup.output


def test_a_second_writer_waits_then_fails_clearly(s3: dict[str, str]) -> None:
    record = create_record("s3://herd/locked", _settings(s3))
    other = open_record(record.uri, _settings(s3, lock_timeout_s=0.3))
    with record.writer():
        started = time.monotonic()
        with pytest.raises(RecordLocked) as refused, other.writer():
            pass
        assert time.monotonic() - started >= 0.3
        assert "pid" in str(refused.value)
    with other.writer():  # released: the other writer gets it
        assert record.location.read(LOCK_FILE) is not None
    assert record.location.read(LOCK_FILE) is None


def _stale_lock(record: Record, body: dict[str, object]) -> None:
    """Leave a lock object as a killed writer would: written once, never renewed."""
    record.location.write(LOCK_FILE, json.dumps(body).encode())


def test_a_dead_writers_lease_is_taken_over_by_the_stores_clock(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ObjectLock, "LEASE_S", 1.0)
    record = create_record("s3://herd/dead", _settings(s3, lock_timeout_s=5.0))
    _stale_lock(record, {"holder": "pid 1 on edge-7 since 03:00:00Z", "token": "dead"})
    started = time.monotonic()
    with record.writer():
        held = json.loads(record.location.read(LOCK_FILE) or b"{}")
        assert "edge-7" not in held["holder"]
    # Taken once the store saw no renewal for a lease (1 s, at its 1-s clock resolution).
    assert 0.9 <= time.monotonic() - started < 4.0


def test_a_live_lease_is_not_taken_whatever_the_clocks_say(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staleness is judged by the store's own clock, so a holder whose clock is far behind
    (its body claims to have expired long ago) is not taken over while it renews."""
    monkeypatch.setattr(ObjectLock, "LEASE_S", 2.0)
    record = create_record("s3://herd/skew", _settings(s3))
    other = open_record(record.uri, _settings(s3, lock_timeout_s=3.5))
    with record.writer() as lock:
        lock_body = json.loads(record.location.read(LOCK_FILE) or b"{}")
        assert "expires_at" not in lock_body  # nothing in it depends on the holder's clock
        with pytest.raises(RecordLocked), other.writer():
            pass
        lock.ensure_held()  # renewed all along


def test_a_writer_that_lost_its_lease_commits_nothing(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from herdrecord.errors import HerdrecordError
    from herdrecord.ingest.ingestor import Ingestor
    from herdrecord.ingest.sources import parse_json

    monkeypatch.setattr(ObjectLock, "LEASE_S", 0.4)
    record = create_record("s3://herd/lost", _settings(s3))
    batch = make_batch(batch_id="cam-2/2026-09-01T08", device_id="cam-2")
    with record.writer():
        ingestor = Ingestor(record)
        assert ingestor.offer(parse_json(json.dumps(batch).encode(), "b")) is None
        # Another writer takes the lock over (as after a long stall of this one).
        _stale_lock(record, {"holder": "pid 2 on central", "token": "theirs"})
        time.sleep(0.5)  # a renewal meets the other writer's lease
        with pytest.raises(HerdrecordError, match="lost its lock"):
            ingestor.flush()
        record.location.delete(LOCK_FILE)
    assert record.committed_batch_ids().to_pylist() == []


def test_a_stale_lock_that_cannot_be_removed_is_a_clear_error(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    monkeypatch.setattr(ObjectLock, "LEASE_S", 1.0)
    record = create_record("s3://herd/stuck", _settings(s3, lock_timeout_s=10.0))
    _stale_lock(record, {"holder": "pid 3 on edge-9", "token": "gone"})
    time.sleep(2.1)
    location = record.location
    assert isinstance(location, ObjectLocation)

    def refuse(**kwargs: object) -> None:
        error = {"Error": {"Code": "NotImplemented"}, "ResponseMetadata": {"HTTPStatusCode": 501}}
        raise ClientError(error, "DeleteObject")  # type: ignore[arg-type]

    monkeypatch.setattr(location.client, "delete_object", refuse)
    started = time.monotonic()
    with pytest.raises(InvalidInput, match="cannot be removed"), record.writer():
        pass
    assert time.monotonic() - started < 5.0


def test_two_waiters_never_both_take_a_dead_writers_lock(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    monkeypatch.setattr(ObjectLock, "LEASE_S", 1.0)
    record = create_record("s3://herd/race", _settings(s3))
    _stale_lock(record, {"holder": "pid 4 on edge-1", "token": "dead"})
    time.sleep(2.1)
    holding = threading.Barrier(2, timeout=10)
    outcomes: list[str] = []

    def wait_for_it() -> None:
        # Each waiter has its own client, as two processes would.
        mine = open_record(record.uri, _settings(s3, lock_timeout_s=1.5))
        try:
            with mine.writer():
                outcomes.append("took it")
                holding.wait()  # both threads reach here only if both hold the lock
        except RecordLocked:
            outcomes.append("waited")
            holding.abort()
        except threading.BrokenBarrierError:
            pass

    threads = [threading.Thread(target=wait_for_it) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["took it", "waited"]


def test_bad_object_store_uris_are_clear(s3: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="no bucket"):
        create_record("s3://no-such-bucket/herd", _settings(s3))
    with pytest.raises(InvalidInput, match="s3://bucket/prefix"):
        create_record("gs://herd/x", _settings(s3))
    with pytest.raises(InvalidInput, match="name a bucket"):
        create_record("s3:///x", _settings(s3))
