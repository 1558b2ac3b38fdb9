"""Opening a record after a power cut: an unreadable newest table version (torn manifest,
data files that never reached the disk) falls back to the last readable one, says so, and
names what to re-send; re-sending makes the record whole again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_batch, write_json
from herdrecord.check import check_record, repair_record
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.ingest import ingest
from herdrecord.intake import parse_json
from herdrecord.recovery import DAMAGED_DIR, RECOVERY_FILE
from herdrecord.store import Record, create_record, open_record

runner = CliRunner()


def _batch(n: int) -> dict[str, object]:
    return make_batch(batch_id=f"dev-01/2026-11-21T{n:02d}", seed=n, track_offset=10 * n)


def _deliver(record: Record, *numbers: int) -> list[str]:
    statuses = []
    for n in numbers:
        body = json.dumps(_batch(n)).encode()
        statuses += [o.status for o in ingest(record, [parse_json(body, f"b{n}")]).outcomes]
    return statuses


def _newest_manifest(record: Record, table: str) -> Path:
    manifests = sorted((record.path / f"{table}.lance" / "_versions").glob("*.manifest"))
    return manifests[0]  # newest first: file names count down from 2^64 - 1


@pytest.fixture
def record(tmp_path: Path) -> Record:
    made = create_record(str(tmp_path / "herd"), Settings(lock_timeout_s=2.0))
    assert _deliver(made, 1, 2) == ["accepted", "accepted"]
    return made


def test_a_sound_record_opens_without_a_recovery(record: Record) -> None:
    again = open_record(record.uri, record.settings)
    assert again.recovery is None
    assert not (record.path / RECOVERY_FILE).exists()


def test_a_torn_tracklets_manifest_takes_its_batch_out_to_be_resent(record: Record) -> None:
    _newest_manifest(record, "tracklets").write_bytes(b"")  # the power cut tore it
    again = open_record(record.uri, record.settings)
    recovery = again.recovery
    assert recovery is not None
    assert [f.table for f in recovery.fallbacks] == ["tracklets"]
    assert recovery.resend_batches == ["dev-01/2026-11-21T02"]  # its tracklets were lost
    assert recovery.resend_after is None  # the ledger itself is whole
    assert (record.path / "tracklets.lance" / DAMAGED_DIR).is_dir()  # kept, not deleted
    assert "re-send 1 batches" in recovery.describe()
    # The batch is gone whole; the other one is untouched; check names the recovery.
    assert again.committed_batch_ids().to_pylist() == ["dev-01/2026-11-21T01"]
    found = check_record(again)
    assert [p.code for p in found.problems] == ["recovered"]
    # Re-sending stores it again, once; repair then clears the note and the check is clean.
    assert _deliver(again, 1, 2) == ["duplicate", "accepted"]
    assert again.table("tracklets").count_rows() == 6
    assert repair_record(again).problems == []
    assert open_record(record.uri, record.settings).recovery is None


def test_a_lost_ledger_version_asks_for_everything_after_its_last_good_one(
    record: Record,
) -> None:
    ledger = record.table("batches").to_lance()
    newest = ledger.get_fragments()[-1].metadata.files[0].path
    (record.path / "batches.lance" / "data" / newest).unlink()  # never reached the disk
    again = open_record(record.uri, record.settings)
    assert again.recovery is not None
    assert [f.table for f in again.recovery.fallbacks] == ["batches"]
    assert again.recovery.resend_after is not None
    assert "acknowledged after" in again.recovery.describe()
    # The second batch's rows outlived its ledger row: it is taken out and named.
    assert again.recovery.resend_batches == ["dev-01/2026-11-21T02"]
    assert again.committed_batch_ids().to_pylist() == ["dev-01/2026-11-21T01"]
    assert again.table("tracklets").count_rows() == 3
    assert _deliver(again, 1, 2) == ["duplicate", "accepted"]
    assert repair_record(again).problems == []
    assert again.read_visible("tracklets").num_rows == 6


def test_the_cli_says_what_was_recovered(record: Record, tmp_path: Path) -> None:
    _newest_manifest(record, "tracklets").write_bytes(b"\x00" * 7)
    resend = write_json(_batch(2), tmp_path / "b2.json")
    result = runner.invoke(cli_app, ["ingest", record.uri, str(resend)])
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.output and "dev-01/2026-11-21T02" in result.output
    assert "1 accepted" in result.output
    checked = runner.invoke(cli_app, ["check", record.uri])
    assert checked.exit_code == 1 and "power cut" in checked.output
