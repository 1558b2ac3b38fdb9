"""`herdrecord check`: a sound record passes; each kind of damage is found, named, and
repaired where that needs no guessing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from conftest import deliver_day_by_day
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.ops.check import check_record, repair_record
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import INDEX_FILE, PENDING_FILE, Record, create_record

SIM = SimulationConfig(
    animals=5, pens=1, days=1, seed=21, arrival_rate_per_day=0.0, obs_interval_s=300.0
)
runner = CliRunner()


@pytest.fixture
def record(tmp_path: Path) -> Iterator[Record]:
    made = create_record(str(tmp_path / "herd"), Settings(retention_enabled=False))
    deliver_day_by_day(made, simulate(SIM).batches)
    yield made


def _codes(record: Record) -> set[str]:
    return {p.code for p in check_record(record).problems}


def test_a_sound_record_passes(record: Record) -> None:
    report = check_record(record)
    assert report.ok, report.problems
    assert report.batches == record.table("batches").count_rows()
    assert report.tracklets == record.table("tracklets").count_rows()
    result = runner.invoke(cli_app, ["check", str(record.path)])
    assert result.exit_code == 0 and "no problems" in result.output


def test_rows_of_a_killed_write_are_found_and_removed(record: Record) -> None:
    table = record.table("tracklets")
    ghost = table.to_lance().to_table().slice(0, 2)
    ghost = ghost.set_column(
        ghost.schema.get_field_index("batch_id"), "batch_id", pa.array(["ghost/1"] * 2)
    )
    table.add(ghost)  # rows written, ledger row never
    assert "uncommitted_rows" in _codes(record)
    result = runner.invoke(cli_app, ["check", str(record.path)])
    assert result.exit_code == 1 and "ghost/1" in result.output and "Traceback" not in result.output
    repaired = repair_record(record)
    assert repaired.ok, repaired.problems
    assert any("removed 2 rows" in line for line in repaired.repaired)


def test_a_batch_listed_twice_keeps_one_ledger_row(record: Record) -> None:
    ledger = record.table("batches")
    ledger.add(ledger.to_lance().to_table().slice(0, 1))
    assert "duplicate_batch" in _codes(record)
    repaired = repair_record(record)
    assert repaired.ok, repaired.problems
    ids = record.table("batches").to_lance().to_table().column("batch_id").to_pylist()
    assert len(ids) == len(set(ids)) == 4


def test_missing_tracklets_and_dangling_links_are_reported_not_guessed(record: Record) -> None:
    tracklets = record.table("tracklets")
    first = tracklets.to_lance().to_table().slice(0, 1).to_pylist()[0]
    tracklets.delete(f"track_id = '{first['track_id']}' AND device_id = '{first['device_id']}'")
    codes = _codes(record)
    assert {"incomplete_batch", "dangling_link"} <= codes
    repaired = repair_record(record)
    assert {p.code for p in repaired.problems} >= {"incomplete_batch", "dangling_link"}
    assert all(not p.repairable for p in repaired.problems)
    assert first["batch_id"] in " ".join(p.message for p in repaired.problems)


def test_a_stale_index_is_rebuilt(record: Record) -> None:
    assert record.table("pool").count_rows() > 0
    (record.path / INDEX_FILE).write_bytes(b"not an index")
    assert "stale_index" in _codes(record)
    result = runner.invoke(cli_app, ["check", str(record.path), "--repair"])
    assert result.exit_code == 0, result.output
    assert "rebuilt the re-ID index" in result.output
    assert check_record(record).ok


def test_rows_of_an_announced_write_are_cleared_by_the_writer_lock(record: Record) -> None:
    table = record.table("tracklets")
    ghost = table.to_lance().to_table().slice(0, 1)
    ghost = ghost.set_column(
        ghost.schema.get_field_index("batch_id"), "batch_id", pa.array(["ghost/2"])
    )
    table.add(ghost)
    (record.path / PENDING_FILE).write_text(json.dumps({"batch_ids": ["ghost/2"]}))
    assert "interrupted_write" in _codes(record)
    repaired = repair_record(record)
    assert repaired.ok, repaired.problems
    assert any("interrupted write" in line for line in repaired.repaired)
