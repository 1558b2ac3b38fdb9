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
from herdrecord.check import check_record
from herdrecord.cli import app as cli_app
from herdrecord.cohorts import run_query
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput, RecordLocked
from herdrecord.export import export_parquet
from herdrecord.links import current_links
from herdrecord.poolindex import INDEX_FILE
from herdrecord.simulate import SimulationConfig, simulate
from herdrecord.sqlsandbox import run_sql
from herdrecord.storage import LOCK_NAME, ObjectLock
from herdrecord.store import Record, create_record, open_record

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
    from herdrecord.ingest import ingest
    from herdrecord.intake import parse_json

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
        assert record.location.read(LOCK_NAME) is not None
    assert record.location.read(LOCK_NAME) is None


def test_a_dead_writers_lease_is_taken_over(s3: dict[str, str]) -> None:
    record = create_record("s3://herd/dead", _settings(s3, lock_timeout_s=2.0))
    dead = {"holder": "pid 1 on edge-7 since 03:00:00Z", "expires_at": time.time() - 1}
    record.location.write(LOCK_NAME, json.dumps(dead).encode())
    with record.writer():
        held = json.loads(record.location.read(LOCK_NAME) or b"{}")
        assert held["expires_at"] > time.time()
        assert "edge-7" not in held["holder"]


def test_a_live_lease_is_renewed(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ObjectLock, "LEASE_S", 0.4)
    record = create_record("s3://herd/renewed", _settings(s3))
    other = open_record(record.uri, _settings(s3, lock_timeout_s=1.2))
    # Held three leases long: renewed, never taken over.
    with record.writer(), pytest.raises(RecordLocked), other.writer():
        pass


def test_bad_object_store_uris_are_clear(s3: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="no bucket"):
        create_record("s3://no-such-bucket/herd", _settings(s3))
    with pytest.raises(InvalidInput, match="s3://bucket/prefix"):
        create_record("gs://herd/x", _settings(s3))
    with pytest.raises(InvalidInput, match="name a bucket"):
        create_record("s3:///x", _settings(s3))
