"""Ingest: atomic, idempotent, single-writer, compacted, and whole after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from herdrecord.config import Settings
from herdrecord.errors import RecordLocked
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import Candidate, parse_json, read_file
from herdrecord.ops.check import repair_record
from herdrecord.store.record import PENDING_FILE, Record, open_record

Factory = Callable[..., dict[str, Any]]


def candidate(batch: dict[str, Any]) -> Candidate:
    return parse_json(json.dumps(batch).encode(), batch["batch_id"])


def counts(record: Record) -> dict[str, int]:
    return {
        name: record.table(name).count_rows()
        for name in ("batches", "tracklets", "samples", "observations", "keyframes")
    }


def test_accepted_batch_is_stored_whole(record: Record, batch_factory: Factory) -> None:
    report = ingest(
        record, [candidate(batch_factory(n_tracklets=3, n_samples=2, n_observations=4))]
    )
    assert [o.status for o in report.outcomes] == ["accepted"]
    assert counts(record) == {
        "batches": 1,
        "tracklets": 3,
        "samples": 6,
        "observations": 12,
        "keyframes": 3,
    }
    stored = record.table("samples").to_lance().to_table()
    assert stored.column("embedding").type.value_type.bit_width == 16
    tracklets = record.table("tracklets").to_arrow()
    assert tracklets.column("tag_id").to_pylist() == ["TAG-0001", None, None]
    assert str(tracklets.column("start").type) == "timestamp[us, tz=UTC]"


def test_rejected_batch_stores_nothing(record: Record, batch_factory: Factory) -> None:
    batch = batch_factory()
    batch["tracklets"][2]["observations"][0]["behaviour"] = "flying"
    report = ingest(record, [candidate(batch)])
    assert report.count("rejected") == 1
    assert "flying" in report.outcomes[0].problems[0]
    assert set(counts(record).values()) == {0}


def test_resending_the_same_batch_is_a_reported_no_op(
    record: Record, batch_factory: Factory
) -> None:
    batch = batch_factory()
    ingest(record, [candidate(batch)])
    before = counts(record)
    report = ingest(record, [candidate(batch), candidate(batch)])
    assert [o.status for o in report.outcomes] == ["duplicate", "duplicate"]
    assert counts(record) == before


def test_the_same_batch_twice_in_one_ingest_is_stored_once(
    record: Record, batch_factory: Factory
) -> None:
    batch = batch_factory()
    report = ingest(record, [candidate(batch), candidate(batch)])
    assert [o.status for o in report.outcomes] == ["accepted", "duplicate"]
    assert counts(record)["batches"] == 1


def test_same_batch_id_with_other_content_is_rejected(
    record: Record, batch_factory: Factory
) -> None:
    ingest(record, [candidate(batch_factory(seed=1))])
    report = ingest(record, [candidate(batch_factory(seed=2))])
    assert report.outcomes[0].status == "rejected"
    assert "already committed with different content" in report.outcomes[0].problems[0]
    assert counts(record)["batches"] == 1


def test_json_and_parquet_forms_of_one_batch_are_duplicates(
    record: Record, batch_factory: Factory, tmp_path: Path
) -> None:
    from herdrecord.contract.models import EdgeBatch
    from herdrecord.contract.parquet import write_bulk

    batch = batch_factory()
    ingest(record, [candidate(batch)])
    write_bulk([EdgeBatch.model_validate(batch)], tmp_path / "b.parquet")
    report = ingest(record, read_file(tmp_path / "b.parquet", 10**8))
    assert [o.status for o in report.outcomes] == ["duplicate"]


def test_a_track_id_reused_by_a_device_is_rejected(record: Record, batch_factory: Factory) -> None:
    ingest(record, [candidate(batch_factory("dev-01/a"))])
    report = ingest(record, [candidate(batch_factory("dev-01/b", seed=5))])
    assert report.outcomes[0].status == "rejected"
    assert "already stored for dev-01 (batch dev-01/a)" in report.outcomes[0].problems[0]
    other_device = batch_factory("dev-02/a", device_id="dev-02", seed=5)
    assert ingest(record, [candidate(other_device)]).outcomes[0].status == "accepted"


def test_many_small_batches_are_grouped_and_compacted(
    tmp_path: Path, batch_factory: Factory
) -> None:
    from herdrecord.store.record import create_record

    settings = Settings(write_group_rows=40, compact_after_fragments=4, lock_timeout_s=0.5)
    record = create_record(str(tmp_path / "herd"), settings)
    batches = [
        candidate(batch_factory(f"dev-01/b{i:02d}", seed=i, track_offset=10 * i)) for i in range(30)
    ]
    report = ingest(record, batches)
    assert report.count("accepted") == 30
    # 30 batches of 12 observation rows, written in groups of >= 40 rows: 8 writes, not 30.
    writes = set(record.table("batches").to_arrow().column("committed_at").to_pylist())
    assert len(writes) == 8
    assert "observations" in report.compacted
    fragments = len(record.table("observations").to_lance().get_fragments())
    assert fragments <= 4
    assert counts(record)["observations"] == 30 * 12


def test_a_second_writer_fails_clearly_while_the_first_holds_the_lock(
    record: Record, batch_factory: Factory
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(record.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RecordLocked, match=f"pid {holder.pid}"):
            ingest(record, [candidate(batch_factory())])
        assert counts(record)["batches"] == 0
    finally:
        holder.kill()
        holder.wait()
    # The kernel drops the lock with the dead process: the next writer proceeds.
    assert ingest(record, [candidate(batch_factory())]).count("accepted") == 1


HOLD_LOCK = """
import sys, time
from pathlib import Path
from herdrecord.store.location import WriteLock
lock = WriteLock.acquire(Path(sys.argv[1]), 5)
print("locked", flush=True)
time.sleep(60)
"""

# A child that writes part of a batch the way the ingestor does, then is SIGKILLed.
HALF_WRITE = """
import json, os, signal, sys
from herdrecord.config import Settings
from herdrecord.contract.frames import stored_rows
from herdrecord.ingest.ingestor import _announce
from herdrecord.ingest.sources import parse_json
from herdrecord.store.record import open_record
record = open_record(sys.argv[1], Settings())
frames = parse_json(open(sys.argv[2], "rb").read(), "x").frames
rows = stored_rows(frames, record.embedder.dim)
with record.writer():
    _announce(record, [frames.header.batch_id])
    for name in sys.argv[3].split(","):
        record.table(name).add(rows[name].cast(record.table(name).schema))
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("written", ["tracklets", "tracklets,samples,observations,keyframes"])
def test_a_batch_killed_mid_write_is_invisible_then_completed_by_resending(
    record: Record, batch_factory: Factory, tmp_path: Path, written: str
) -> None:
    ingest(record, [candidate(batch_factory("dev-01/first"))])
    batch = batch_factory("dev-01/second", seed=9, track_offset=100)
    path = tmp_path / "second.json"
    path.write_text(json.dumps(batch))
    child = subprocess.run(
        [sys.executable, "-c", HALF_WRITE, str(record.path), str(path), written], check=False
    )
    assert child.returncode == -signal.SIGKILL
    reopened = open_record(str(record.path))
    assert reopened.pending_batch_ids() == ["dev-01/second"]
    visible = reopened.read_visible("tracklets")
    assert set(visible.column("batch_id").to_pylist()) == {"dev-01/first"}
    report = ingest(reopened, read_file(path, 10**8))
    assert [o.status for o in report.outcomes] == ["accepted"]
    assert not (record.path / PENDING_FILE).exists()
    assert counts(reopened) == {
        "batches": 2,
        "tracklets": 6,
        "samples": 12,
        "observations": 24,
        "keyframes": 6,
    }


def _assert_only_whole_batches(record: Record) -> None:
    """Every ledger entry's rows are all there, and no row lacks a ledger entry."""
    ledger = record.table("batches").to_arrow()
    expected = {row["batch_id"]: row for row in ledger.to_pylist()}
    for name, column in (
        ("tracklets", "n_tracklets"),
        ("samples", "n_samples"),
        ("observations", "n_observations"),
        ("keyframes", "n_keyframes"),
    ):
        rows = record.read_visible(name, columns=["batch_id"])
        found = rows.group_by("batch_id").aggregate([("batch_id", "count")]).to_pylist()
        per_batch = {r["batch_id"]: r["batch_id_count"] for r in found}
        assert set(per_batch) <= set(expected), name
        for batch_id, row in expected.items():
            assert per_batch.get(batch_id, 0) == row[column], (name, batch_id)
        stored = set(record.table(name).to_arrow().column("batch_id").to_pylist())
        # Rows beyond the visible ones may only belong to the batch a killed writer announced.
        assert stored - set(per_batch) <= set(record.pending_batch_ids()), name


def test_cli_ingest_killed_at_random_moments_keeps_only_whole_batches(
    record: Record, batch_factory: Factory, tmp_path: Path
) -> None:
    folder = tmp_path / "batches"
    folder.mkdir()
    for i in range(40):
        batch = batch_factory(f"dev-01/b{i:02d}", seed=i, track_offset=10 * i, n_observations=30)
        (folder / f"b{i:02d}.json").write_text(json.dumps(batch))
    env = {**os.environ, "HERDRECORD_WRITE_GROUP_ROWS": "1", "HERDRECORD_LOCK_TIMEOUT_S": "20"}
    command = [sys.executable, "-m", "herdrecord", "ingest", str(record.path), str(folder)]
    for delay in (1.6, 2.4, 3.2):
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        _assert_only_whole_batches(open_record(str(record.path)))
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr
    assert "0 rejected" in finished.stdout
    reopened = open_record(str(record.path))
    _assert_only_whole_batches(reopened)
    assert counts(reopened)["batches"] == 40
    assert counts(reopened)["observations"] == 40 * 3 * 30
    # Rows the killed writers left behind are invisible; check finds them, repair clears them.
    repaired = repair_record(reopened)
    assert repaired.ok, repaired.problems


def test_an_empty_batch_after_stored_tracklets_is_accepted(
    record: Record, batch_factory: Factory
) -> None:
    ingest(record, [candidate(batch_factory("dev-01/a"))])
    empty = batch_factory("dev-01/b", n_tracklets=0)
    assert [o.status for o in ingest(record, [candidate(empty)]).outcomes] == ["accepted"]


def test_a_rejected_batch_does_not_spoil_the_next_one(
    record: Record, batch_factory: Factory
) -> None:
    ingest(record, [candidate(batch_factory("dev-01/a", n_tracklets=1))])
    # b reuses the stored cam1-000000 and also carries cam1-000001; c carries cam1-000001 only.
    spoilt = batch_factory("dev-01/b", n_tracklets=2, seed=3)
    fine = batch_factory("dev-01/c", n_tracklets=1, seed=4, track_offset=1)
    report = ingest(record, [candidate(spoilt), candidate(spoilt), candidate(fine)])
    assert [o.status for o in report.outcomes] == ["rejected", "rejected", "accepted"]
    assert "already stored for dev-01 (batch dev-01/a)" in report.outcomes[0].problems[0]
