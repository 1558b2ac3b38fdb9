"""Moving a record to a new embedder: the shadow, the partition diff, the switch, and a run
killed halfway that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lancedb
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import deliver_day_by_day, make_batch, save_tiny_dinov3
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.embedding.model import Embedder
from herdrecord.embedding.reembed import KEPT_BY, apply_reembed, reembed, shadow_of
from herdrecord.errors import InvalidInput
from herdrecord.events.rules import parse_event
from herdrecord.events.store import add_events, current_events
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.ops.check import check_record
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record, create_record, open_record

# Two days: a pen-day's own exemplars are dropped while it is re-solved and a tag is bound by
# reads on two days, so through a random model a one-day barn would keep no animal's name.
SIM = SimulationConfig(
    animals=6, pens=1, days=2, seed=9, arrival_rate_per_day=0.0, obs_interval_s=300.0
)
SETTINGS = Settings(retention_enabled=False, lock_timeout_s=10.0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_dinov3(tmp_path_factory.mktemp("weights") / "dinov3-new", seed=4)


@pytest.fixture(scope="module")
def embedder(weights: Path) -> Embedder:
    return Embedder.load(weights, device="cpu")


def _barn(path: Path) -> Record:
    record = create_record(str(path), SETTINGS)
    deliver_day_by_day(record, simulate(SIM).batches)
    return record


def _new_batch() -> bytes:
    """A batch from a device the record has not heard from."""
    return json.dumps(make_batch("dev-77/2026-11-21T06", device_id="dev-77")).encode()


def _links(record: Record) -> dict[tuple[str, str], str | None]:
    links = current_links(record)
    return {
        (d, t): a
        for d, t, a in zip(
            links.column("device_id").to_pylist(),
            links.column("track_id").to_pylist(),
            links.column("animal_id").to_pylist(),
            strict=True,
        )
    }


def test_reembed_links_a_shadow_reports_the_diff_then_switches(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "herd"
    record = _barn(path)
    before = _links(record)
    versions = {n: record.table(n).version for n in record.db.list_tables(limit=10_000).tables}
    with_frames = {
        (d, t)
        for d, t in zip(
            *(
                record.read_visible("keyframes", ["device_id", "track_id"]).column(c).to_pylist()
                for c in ("device_id", "track_id")
            ),
            strict=True,
        )
    }
    report = reembed(record, embedder, chunk=50)
    assert report.stage == "linked"
    assert report.reembedded == len(with_frames)
    assert report.kept == sum(1 for k, a in before.items() if a and k not in with_frames)
    assert report.linked_before == sum(1 for a in before.values() if a)
    # The record itself is untouched until the switch.
    assert {
        n: record.table(n).version for n in record.db.list_tables(limit=10_000).tables
    } == versions
    assert open_record(str(path)).embedder.weights_sha256 is None
    shadow = open_record(str(shadow_of(path) / "record"), SETTINGS)
    after = _links(shadow)
    for change in report.changed:  # the diff is what the two partitions say
        key = (change.device_id, change.track_id)
        assert before.get(key) == change.before
        assert change.after is None or after.get(key) is not None
    unchanged = [k for k in before if k not in {(c.device_id, c.track_id) for c in report.changed}]
    assert unchanged, "some tracklets keep their animal"
    pool = shadow.table("pool").to_lance().to_table()
    assert pool.num_rows > 0 and len(pool.column("embedding")[0].as_py()) == 384
    kept = shadow.table("constraints").to_lance().to_table(filter=f"decided_by = '{KEPT_BY}'")
    assert kept.num_rows == report.kept
    again = reembed(record, embedder)  # a rerun finds it done
    assert again.changed == report.changed

    final = apply_reembed(path)
    assert final.stage == "applied" and final.backup and Path(final.backup).exists()
    switched = open_record(str(path), SETTINGS)
    assert switched.embedder.weights_sha256 == embedder.identity.weights_sha256
    assert _links(switched) == after
    for key in unchanged:  # the ids of animals the new model agrees on stay
        assert after.get(key) == before[key]
    # From now on a batch must say which weights made its vectors.
    batch = json.loads(_new_batch())
    refused = ingest(switched, [parse_json(json.dumps(batch).encode(), "unstated")])
    assert "weights_sha256: required" in " ".join(refused.outcomes[0].problems)
    batch["embedder"]["weights_sha256"] = embedder.identity.weights_sha256
    accepted = ingest(switched, [parse_json(json.dumps(batch).encode(), "stated")])
    assert accepted.outcomes[0].status == "accepted", accepted.outcomes[0].problems
    assert open_record(str(final.backup), SETTINGS).embedder.weights_sha256 is None
    with pytest.raises(InvalidInput, match="already holds"):
        reembed(switched, embedder)


def test_the_switch_is_refused_when_the_record_changed_since(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "herd"
    record = _barn(path)
    reembed(record, embedder, chunk=100)
    animal = next(a for a in _links(record).values() if a)
    event = {
        "animal_id": animal,
        "kind": "note",
        "at": "2026-09-02T10:00:00Z",
        "note": "written after the shadow",
        "author": "vet",
    }
    add_events(record, [parse_event(event)])
    with pytest.raises(InvalidInput, match="written to since the shadow"):
        apply_reembed(path)
    assert open_record(str(path)).embedder.weights_sha256 is None  # nothing switched
    redone = reembed(record, embedder, chunk=100)  # as the message says: run it again
    assert redone.stage == "linked"
    assert apply_reembed(path).stage == "applied"
    notes = current_events(open_record(str(path)), kind="note").to_pylist()
    assert [n["note"] for n in notes] == ["written after the shadow"]  # nothing lost


def test_a_switch_killed_between_its_renames_is_finished_by_the_next_run(
    tmp_path: Path, embedder: Embedder, weights: Path
) -> None:
    path = tmp_path / "herd"
    record = _barn(path)
    reembed(record, embedder, chunk=100)
    shadow = shadow_of(path)
    state = json.loads((shadow / "state.json").read_text())
    backup = path.with_name(
        f"{path.name}.before-reembed-{state['embedder']['weights_sha256'][:12]}"
    )
    state.update(stage="switching", backup=str(backup))
    (shadow / "state.json").write_text(json.dumps(state))
    os.rename(path, backup)  # killed here: the record is aside, the shadow not yet in place
    done = CliRunner().invoke(
        cli_app, ["reembed", str(path), "--weights", str(weights)], env={"HF_HUB_OFFLINE": "1"}
    )
    assert done.exit_code == 0, done.output
    assert "finished the switch" in done.output
    assert open_record(str(path)).embedder.weights_sha256 == embedder.identity.weights_sha256


def test_a_run_killed_halfway_resumes_and_applies(tmp_path: Path, weights: Path) -> None:
    path = tmp_path / "herd"
    _barn(path)
    command = [
        sys.executable,
        "-m",
        "herdrecord",
        "reembed",
        str(path),
        "--weights",
        str(weights),
        "--chunk",
        "4",
        "--torch-device",
        "cpu",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    work = shadow_of(path) / "work"
    deadline = time.monotonic() + 120
    embedded = 0
    while time.monotonic() < deadline and process.poll() is None:
        if (work / "descriptors.lance").exists():
            embedded = lancedb.connect(str(work)).open_table("descriptors").count_rows()
            if embedded >= 12:
                break
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()[0].decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = json.loads((shadow_of(path) / "state.json").read_text())
    assert state["stage"] == "embedding"  # killed while embedding
    done = CliRunner().invoke(cli_app, [*command[3:], "--apply"], env={"HF_HUB_OFFLINE": "1"})
    assert done.exit_code == 0, done.output
    assert "switched" in done.output and "would change animal" in done.output
    rows = lancedb.connect(str(work)).open_table("descriptors").to_arrow()
    keys = list(
        zip(rows.column("device_id").to_pylist(), rows.column("track_id").to_pylist(), strict=True)
    )
    assert len(keys) == len(set(keys))  # nothing embedded twice
    vectors = np.asarray(rows.column("descriptor").combine_chunks().flatten()).reshape(-1, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    switched = open_record(str(path))
    assert switched.embedder.weights_sha256 is not None
    assert check_record(switched).ok, check_record(switched).problems
