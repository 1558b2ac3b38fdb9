"""The timeline and days commands through Typer's runner, on a small simulated barn."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from PIL import Image
from typer.testing import CliRunner

from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.days.derive import read_days
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.run import link_pending
from herdrecord.lookup.timeline import animal_timeline, weekly_summary
from herdrecord.simulation import Simulation, SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record, create_record, open_record

CONFIG = SimulationConfig(animals=8, pens=1, days=10, seed=2)
DAY_ROW = re.compile(r"^(\d{4}-\d{2}-\d{2}) +pen-")  # a day row of the table, not an event's

runner = CliRunner()


@pytest.fixture(scope="module")
def barn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[date]]:
    """A linked barn with the simulator's events; its best-seen animal and that one's days."""
    sim = simulate(CONFIG)
    path = tmp_path_factory.mktemp("cli-days") / "herd"
    record = create_record(str(path), Settings())
    ingest(record, (parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in sim.batches))
    link_pending(record)
    _record_truth_events(record, sim)
    animal_ids = read_days(record).column("animal_id").to_pylist()
    animal = max(sorted(set(animal_ids)), key=animal_ids.count)
    return path, animal, read_days(record, animal).column("day").to_pylist()


def _record_truth_events(record: Record, sim: Simulation) -> None:
    """Store the simulator's events under each true animal's main record animal."""
    con = duckdb.connect()
    con.register("links", current_links(record))
    con.register("truth", sim.truth_tracklets)
    main_animal = dict(
        con.sql(
            "SELECT t, arg_max(animal_id, s) FROM (SELECT l.animal_id, truth.animal_id AS t, "
            'sum(epoch(truth."end") - epoch(truth.start)) AS s FROM truth JOIN links l '
            "USING (device_id, track_id) WHERE l.animal_id IS NOT NULL GROUP BY ALL) GROUP BY 1"
        ).fetchall()
    )
    now = datetime.now(UTC)
    rows = [
        {
            **{k: e[k] for k in ("kind", "at", "value", "scale", "code", "note")},
            "animal_id": main_animal[e["animal_id"]],
            "author": e["author"] or "sim",
            "event_id": uuid.uuid4().hex,
            "recorded_at": now,
        }
        for e in sim.truth_events.to_pylist()
        if e["animal_id"] in main_animal
    ]
    events = record.table("events")
    events.add(pa.Table.from_pylist(rows, schema=events.schema))


def _day_rows(output: str) -> list[str]:
    return [m.group(1) for line in output.splitlines() if (m := DAY_ROW.match(line))]


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert "timeline" in result.output and "days" in result.output
    for command in ("timeline", "days"):
        assert runner.invoke(app, [command, "--help"]).exit_code == 0


def test_timeline_shows_every_day_the_calibration_and_the_events(
    barn: tuple[Path, str, list[date]],
) -> None:
    path, animal, days = barn
    result = runner.invoke(app, ["timeline", str(path), animal])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{animal} — pen-1, active")
    assert f"{len(days)} days, {days[0]} to {days[-1]}" in lines[1]
    assert re.search(r"cross-validated error \d+\.\d kg \(\d+\.\d %\), fitted on \d+", lines[2])
    assert _day_rows(result.output) == [str(d) for d in days]
    first = read_days(open_record(str(path)), animal).to_pylist()[0]
    assert f"{first['weight_est_kg']:.1f}" in result.output
    assert "weight" in result.output and "lameness" in result.output  # the events table
    assert "weekly herd scoring" in result.output


def test_plot_writes_a_png(barn: tuple[Path, str, list[date]], tmp_path: Path) -> None:
    path, animal, _ = barn
    out = tmp_path / "timeline.png"
    result = runner.invoke(app, ["timeline", str(path), animal, "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert f"figure written to {out}" in result.output
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 900)


def test_from_and_to_restrict_the_days(barn: tuple[Path, str, list[date]]) -> None:
    path, animal, days = barn
    period = ["--from", str(days[2]), "--to", str(days[4])]
    result = runner.invoke(app, ["timeline", str(path), animal, *period])
    assert result.exit_code == 0, result.output
    assert _day_rows(result.output) == [str(d) for d in days[2:5]]
    result = runner.invoke(app, ["timeline", str(path), animal, *period, "--json"])
    assert [json.loads(line)["day"] for line in result.stdout.splitlines()] == [
        str(d) for d in days[2:5]
    ]


def test_json_lines_hold_the_days_with_keyframe_references(
    barn: tuple[Path, str, list[date]],
) -> None:
    path, animal, days = barn
    result = runner.invoke(app, ["timeline", str(path), animal, "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["day"] for row in rows] == [str(d) for d in days]
    assert {"weight_est_kg", "scale_weight_kg", "anomalies", "behaviour_min"} <= set(rows[0])
    assert sum(row["scale_weight_kg"] is not None for row in rows) >= 1  # weekly weighings
    keyframe = rows[0]["keyframes"][0]
    assert set(keyframe) == {"device_id", "track_id", "t"}  # references, never JPEG bytes


def test_format_writes_the_days_as_rows_and_json_stays_jsonl(
    barn: tuple[Path, str, list[date]], tmp_path: Path
) -> None:
    path, animal, days = barn

    def stdout(*args: str) -> str:
        result = runner.invoke(app, ["timeline", str(path), animal, *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    lines = stdout("--format", "jsonl")
    assert stdout("--json") == lines  # the old flag, kept for scripts
    rows = [json.loads(line) for line in lines.splitlines()]
    assert json.loads(stdout("--format", "json")) == rows
    assert [row["day"] for row in rows] == [str(d) for d in days]
    as_csv = list(csv.DictReader(io.StringIO(stdout("--format", "csv"))))
    assert [row["day"] for row in as_csv] == [str(d) for d in days]
    assert set(as_csv[0]) == set(rows[0])
    assert json.loads(as_csv[0]["keyframes"]) == rows[0]["keyframes"]  # nested, as JSON
    # Rows alone on stdout: no header, no events, and the figure's line goes to stderr.
    plotted = runner.invoke(
        app, ["timeline", str(path), animal, "--format", "csv", "--plot", str(tmp_path / "t.png")]
    )
    assert plotted.exit_code == 0, plotted.output
    assert "figure written" in plotted.stderr and "figure written" not in plotted.stdout
    assert plotted.stdout.splitlines()[0].startswith('"animal_id","day"')  # no header line
    helped = runner.invoke(app, ["timeline", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--format" in helped and "the same as --format jsonl" in helped
    both = runner.invoke(app, ["timeline", str(path), animal, "--json", "--format", "csv"])
    assert both.exit_code == 2 and "--json is --format jsonl" in both.output


def test_weekly_rows_summarise_the_days(barn: tuple[Path, str, list[date]]) -> None:
    path, animal, days = barn
    result = runner.invoke(app, ["timeline", str(path), animal, "--weekly"])
    assert result.exit_code == 0, result.output
    weeks = weekly_summary(animal_timeline(open_record(str(path)), animal).days)
    mondays = sorted({d.fromordinal(d.toordinal() - d.weekday()) for d in days})
    assert weeks.column("week").to_pylist() == mondays
    assert sum(weeks.column("days").to_pylist()) == len(days)
    assert f"{len(mondays)} weeks from Monday" in result.output
    assert _day_rows(result.output) == [str(m) for m in mondays]


def test_unknown_animal_and_bad_dates_are_one_line(barn: tuple[Path, str, list[date]]) -> None:
    path, animal, _ = barn
    for args, message in (
        ([animal.replace("P", "Q")], "error: no animal 'Q"),
        ([animal, "--from", "2026-13-01"], "error: --from '2026-13-01': expected a date"),
        ([animal, "--from", "2026-09-05", "--to", "2026-09-01"], "error: the period starts"),
    ):
        result = runner.invoke(app, ["timeline", str(path), *args])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2, result.output
        assert len(lines) == 1 and lines[0].startswith(message), result.output


def test_days_summary_and_rebuild(barn: tuple[Path, str, list[date]], tmp_path: Path) -> None:
    copy = tmp_path / "herd"
    shutil.copytree(barn[0], copy)
    stored = read_days(open_record(str(copy)))
    animals = len(set(stored.column("animal_id").to_pylist()))
    summary = f"{animals} animals, {stored.num_rows} animal-days over {CONFIG.days} days"
    result = runner.invoke(app, ["days", str(copy)])
    assert result.exit_code == 0, result.output
    assert summary in result.output
    assert "flagged:" in result.output and "cross-validated error" in result.output
    result = runner.invoke(app, ["days", str(copy), "--rebuild"])
    assert result.exit_code == 0, result.output
    assert re.search(
        rf"rebuilt {stored.num_rows} animal-day rows over {CONFIG.days} days in \d+\.\d s",
        result.output,
    )
    assert summary in result.output
