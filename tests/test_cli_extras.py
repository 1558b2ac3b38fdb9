"""Commands people looked for: an animal-day's pictures as files, SQL from standard input."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.days.derive import read_days
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.run import link_pending
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import create_record

runner = CliRunner()


def test_keyframes_writes_a_day_s_pictures_as_jpeg_files(tmp_path: Path) -> None:
    sim = simulate(SimulationConfig(animals=4, pens=1, days=2, seed=3, keyframes=True))
    record = create_record(str(tmp_path / "herd"), Settings())
    ingest(record, (parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in sim.batches))
    link_pending(record)
    days = read_days(record).to_pylist()
    chosen = next(d for d in days if d["keyframes"])
    animal, day = chosen["animal_id"], chosen["day"]
    out = tmp_path / "pictures"
    result = runner.invoke(
        app, ["keyframes", str(tmp_path / "herd"), animal, "--day", str(day), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.jpg"))
    assert len(files) == len(chosen["keyframes"])
    assert all(f.name.startswith(str(day)) for f in files)
    for file in files:
        with Image.open(file) as image:
            assert image.format == "JPEG"
    assert [line for line in result.stdout.splitlines() if line] == [str(f) for f in files][
        ::1
    ] or (sorted(result.stdout.split()) == [str(f) for f in files])
    bad = runner.invoke(app, ["keyframes", str(tmp_path / "herd"), animal, "--day", "12/01"])
    assert bad.exit_code == 2 and "expected a date as YYYY-MM-DD" in bad.output


def test_sql_reads_its_statement_from_standard_input(tmp_path: Path) -> None:
    create_record(str(tmp_path / "herd"), Settings())
    result = runner.invoke(
        app, ["sql", str(tmp_path / "herd"), "-", "--format", "json"], input="SELECT 42 AS answer"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"answer": 42}]
