"""A record made without a farm takes the farm of its first accepted batch; one made with a
farm, or that has taken one, refuses every batch of another farm."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from conftest import make_batch
from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.ingest.group_commit import commit_uploads
from herdrecord.ingest.ingestor import Ingestor, ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.store.record import create_record, open_record
from herdrecord.store.schema import META_FARM_FROM_FIRST_BATCH

runner = CliRunner()


def _batch(batch_id: str, farm: str, offset: int = 0) -> dict[str, object]:
    return {**make_batch(batch_id, track_offset=offset), "farm_id": farm}


def _candidate(batch: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_json(json.dumps(batch).encode(), str(batch["batch_id"]))


def test_init_without_a_farm_takes_the_first_batch_farm(tmp_path: Path) -> None:
    herd = tmp_path / "herd"
    made = runner.invoke(app, ["init", str(herd)])
    assert made.exit_code == 0, made.output
    assert "farm: from its first batch" in made.output
    first = tmp_path / "first.json"
    first.write_text(json.dumps(_batch("dev-01/a", "acme-7")))
    result = runner.invoke(app, ["ingest", str(herd), str(first)])
    assert result.exit_code == 0, result.output
    assert "takes farm acme-7 from its first batch" in result.output
    shown = runner.invoke(app, ["farm", str(herd), "--format", "json"])
    assert json.loads(shown.stdout) == [{"record": str(herd), "farm_id": "acme-7"}]
    stray = tmp_path / "stray.json"
    stray.write_text(json.dumps(_batch("dev-01/b", "other-farm", offset=50)))
    refused = runner.invoke(app, ["ingest", str(herd), str(stray)])
    assert refused.exit_code == 1
    assert "this record belongs to farm 'acme-7', the batch to 'other-farm'" in refused.output


def test_a_new_record_says_it_has_no_farm_yet(tmp_path: Path) -> None:
    runner.invoke(app, ["init", str(tmp_path / "herd")])
    shown = runner.invoke(app, ["farm", str(tmp_path / "herd"), "--format", "json"])
    assert json.loads(shown.stdout) == [{"record": str(tmp_path / "herd"), "farm_id": None}]


def test_an_explicit_farm_stays_strict(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), Settings(), farm_id="farm-b")
    report = ingest(record, [_candidate(_batch("dev-01/a", "farm-c"))])
    assert [o.status for o in report.outcomes] == ["rejected"]
    assert report.farm_adopted is None and record.farm_id == "farm-b"


def test_one_ingest_takes_one_farm(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), Settings())
    report = ingest(
        record,
        [_candidate(_batch("dev-01/a", "acme-7")), _candidate(_batch("dev-02/b", "acme-8"))],
    )
    assert [o.status for o in report.outcomes] == ["accepted", "rejected"]
    assert report.farm_adopted == "acme-7"
    assert open_record(record.uri).farm_id == "acme-7"


def test_an_upload_refused_whole_names_no_farm(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), Settings())
    bad = _batch("dev-01/bad", "acme-7", offset=10)
    bad["embedder"] = {"name": "other", "dim": 8}
    refused, stored = commit_uploads(
        record,
        [
            [_candidate(_batch("dev-01/a", "acme-7")), _candidate(bad)],
            [_candidate(_batch("dev-02/b", "acme-8", offset=20))],
        ],
    )
    assert [o.status for o in refused] == ["rejected", "rejected"]
    assert [o.status for o in stored] == ["accepted"]
    assert open_record(record.uri).farm_id == "acme-8"


def test_a_run_stopped_before_it_named_the_farm_names_it_next_time(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), Settings())
    ingest(record, [_candidate(_batch("dev-01/a", "acme-7"))])
    with record.writer():
        record.set_metadata(META_FARM_FROM_FIRST_BATCH, True)  # as if stopped before it said
    reopened = open_record(record.uri)
    with reopened.writer():
        ingestor = Ingestor(reopened)
    assert ingestor.expect.farm_id == "acme-7"
    assert not open_record(record.uri).farm_from_first_batch
