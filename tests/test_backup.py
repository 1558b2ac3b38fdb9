"""Backups: a round trip that compares every table, and a backup taken while ingest runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import deliver_day_by_day, make_batch
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.ops.backup import backup_record, restore_record
from herdrecord.ops.check import check_record
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import Record, create_record, open_record

SIM = SimulationConfig(
    animals=5, pens=1, days=1, seed=31, arrival_rate_per_day=0.0, obs_interval_s=300.0
)
SETTINGS = Settings(retention_enabled=False, lock_timeout_s=30.0)


def _tables(record: Record) -> dict[str, list[dict[str, object]]]:
    out = {}
    for name in sorted(record.db.list_tables(limit=10_000).tables):
        rows = record.table(name).to_lance().to_table().to_pylist()
        out[name] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


def test_a_round_trip_gives_back_every_table(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), SETTINGS)
    deliver_day_by_day(record, simulate(SIM).batches)
    made = CliRunner().invoke(cli_app, ["backup", str(record.path), str(tmp_path / "bak")])
    assert made.exit_code == 0, made.output
    restored = CliRunner().invoke(
        cli_app, ["restore", str(tmp_path / "bak"), str(tmp_path / "again")]
    )
    assert restored.exit_code == 0, restored.output
    assert "check passed" in " ".join(restored.output.split())
    again = open_record(str(tmp_path / "again"), SETTINGS)
    assert _tables(again) == _tables(record)
    assert check_record(again).ok
    with pytest.raises(InvalidInput, match="not empty"):
        backup_record(record, tmp_path / "again")
    with pytest.raises(InvalidInput, match="not a herdrecord backup"):
        restore_record(tmp_path / "herd" / "batches.lance", tmp_path / "elsewhere")


def test_a_backup_taken_while_ingest_runs_is_consistent(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), SETTINGS)
    batches = [
        make_batch(f"dev-01/b{i:03d}", seed=i, track_offset=10 * i, n_observations=30)
        for i in range(40)
    ]
    writer = threading.Thread(
        target=lambda: [
            ingest(
                open_record(str(record.path), SETTINGS),
                [parse_json(json.dumps(b).encode(), str(b["batch_id"]))],
            )
            for b in batches
        ]
    )
    writer.start()
    while record.table("batches").count_rows() < 5:
        pass
    report = backup_record(record, tmp_path / "bak")
    writer.join()
    assert 5 <= report.batches <= 40
    check = restore_record(tmp_path / "bak", tmp_path / "again")
    assert check.ok, check.problems  # every batch whole, none half-copied
    again = open_record(str(tmp_path / "again"), SETTINGS)
    assert again.table("tracklets").count_rows() == 3 * report.batches
    assert open_record(str(record.path)).table("batches").count_rows() == 40  # ingest went on
