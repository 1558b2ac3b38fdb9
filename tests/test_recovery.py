"""Opening a record after a power cut: an unreadable newest table version (torn manifest,
data files that never reached the disk) falls back to the last readable one, says so, and
names what to re-send; re-sending makes the record whole again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_batch, write_json
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.errors import HerdrecordError
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.ops.check import check_record, repair_record
from herdrecord.store.record import Record, create_record, open_record
from herdrecord.store.recovery import DAMAGED_DIR, RECOVERY_FILE

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
    assert [p.code for p in found.problems] == ["recovered_resend"]
    assert "still to re-send: 1 batches: dev-01/2026-11-21T02" in found.problems[0].message
    assert [p.code for p in repair_record(again).problems] == ["recovered_resend"]  # kept
    # Re-sending stores it again, once; repair then clears the note and the check is clean.
    assert _deliver(again, 1, 2) == ["duplicate", "accepted"]
    assert again.table("tracklets").count_rows() == 6
    assert [p.code for p in check_record(again).problems] == ["recovered"]
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
    assert "damaged" in result.output and "dev-01/2026-11-21T02" in result.output
    assert "1 accepted" in result.output
    checked = runner.invoke(cli_app, ["check", record.uri])
    assert checked.exit_code == 1 and "power cut" in checked.output


@pytest.mark.parametrize("table", ["samples", "observations", "keyframes"])
def test_a_lost_version_of_another_batch_table_takes_its_batch_out(
    record: Record, table: str
) -> None:
    _newest_manifest(record, table).write_bytes(b"")
    again = open_record(record.uri, record.settings)
    assert again.recovery is not None
    assert [f.table for f in again.recovery.fallbacks] == [table]
    assert again.recovery.resend_batches == ["dev-01/2026-11-21T02"]
    assert again.committed_batch_ids().to_pylist() == ["dev-01/2026-11-21T01"]
    assert _deliver(again, 2) == ["accepted"]
    assert repair_record(again).problems == []


def test_a_missing_deletion_file_counts_as_damage(record: Record) -> None:
    record.table("tracklets").delete("track_id = 'no-such-track'")  # a no-op: no new file
    events = record.table("events")
    assert events.count_rows() == 0
    tracklets = record.table("tracklets")
    first = tracklets.to_lance().to_table(columns=["track_id"]).column(0)[0].as_py()
    with record.writer():
        tracklets.delete(f"track_id = '{first}'")  # writes a deletion file
    deletions = list((record.path / "tracklets.lance" / "_deletions").iterdir())
    assert deletions
    for file in deletions:
        file.write_bytes(b"")
    again = open_record(record.uri, record.settings)
    assert again.recovery is not None
    assert again.recovery.fallbacks[0].why == "a deletion file is missing or empty"
    assert again.table("tracklets").count_rows() == 6  # the delete went back with it


def test_an_error_without_evidence_changes_nothing(
    record: Record, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lance

    from herdrecord.store import recovery

    newest = _newest_manifest(record, "tracklets")
    real = lance.dataset

    def flaky(uri: str, *args: object, **kwargs: object) -> object:
        if uri.endswith("tracklets.lance"):
            raise ValueError("LanceError(IO): Too many open files")
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(recovery.lance, "dataset", flaky)
    with pytest.raises(HerdrecordError, match="nothing was changed"):
        open_record(record.uri, record.settings)
    assert newest.exists()
    assert not (record.path / "tracklets.lance" / DAMAGED_DIR).exists()
    monkeypatch.undo()
    assert open_record(record.uri, record.settings).recovery is None


def test_a_table_with_no_readable_version_is_a_clear_error(record: Record) -> None:
    for manifest in (record.path / "animals.lance" / "_versions").glob("*.manifest"):
        manifest.write_bytes(b"")
    with pytest.raises(HerdrecordError, match="restore the record from a backup"):
        open_record(record.uri, record.settings)
    result = runner.invoke(cli_app, ["info", record.uri])
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_a_recovery_cut_short_is_finished_by_the_next_open(
    record: Record, monkeypatch: pytest.MonkeyPatch
) -> None:
    from herdrecord.store import recovery

    _newest_manifest(record, "tracklets").write_bytes(b"")

    def power_cut(*args: object) -> list[str]:
        raise KeyboardInterrupt  # stands in for the process dying here

    monkeypatch.setattr(recovery, "_take_out_broken_batches", power_cut)
    with pytest.raises(KeyboardInterrupt):
        open_record(record.uri, record.settings)
    note = json.loads((record.path / RECOVERY_FILE).read_text())
    assert note[-1]["state"] == "in progress"
    monkeypatch.undo()
    again = open_record(record.uri, record.settings)
    assert again.recovery is not None and again.recovery.state == "done"
    assert again.recovery.resend_batches == ["dev-01/2026-11-21T02"]
    assert again.committed_batch_ids().to_pylist() == ["dev-01/2026-11-21T01"]


def test_a_table_directory_without_versions_is_passed_over(record: Record) -> None:
    (record.path / "stray.lance" / "_versions").mkdir(parents=True)
    _newest_manifest(record, "tracklets").write_bytes(b"")
    again = open_record(record.uri, record.settings)
    assert again.recovery is not None
    assert [f.table for f in again.recovery.fallbacks] == ["tracklets"]
