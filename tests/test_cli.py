"""The command line through Typer's runner: help, init, ingest, info, migrate, errors."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from herdrecord.cli import app

runner = CliRunner()
Factory = Callable[..., dict[str, Any]]

COMMANDS = [
    "init",
    "migrate",
    "ingest",
    "info",
    "simulate",
    "demo",
    "link",
    "animals",
    "review",
    "history",
    "export",
    "event",
    "timeline",
    "days",
    "budget",
    "cameras",
    "compact",
    "query",
    "sql",
    "pens",
    "journal",
    "keys",
    "fleet",
]


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_every_command_and_subcommand_is_in_the_readme_table() -> None:
    import typer.main

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme[readme.index("## Commands") :]
    table = table[: table.index("\n\n", table.index("|---|"))]
    # A row's command cell, e.g. `herdrecord review confirm\|reassign ... PATH` / `keys list`.
    cells = [row.split(" | ")[0] for row in table.splitlines() if row.startswith("| `herdrecord")]
    commands = getattr(typer.main.get_command(app), "commands", {})
    assert len(commands) > 20
    for name, command in commands.items():
        own = [cell for cell in cells if re.search(rf"herdrecord {re.escape(name)}\b", cell)]
        assert own, f"`herdrecord {name}` has no row in README's command table"
        for sub in getattr(command, "commands", {}):
            assert any(re.search(rf"\b{re.escape(sub)}\b", cell) for cell in own), (
                f"`herdrecord {name} {sub}` is not in README's command table"
            )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    assert len(result.output.splitlines()) > 4


def test_init_ingest_info_round_trip(tmp_path: Path, batch_factory: Factory) -> None:
    herd = tmp_path / "herd"
    result = runner.invoke(app, ["init", str(herd), "--farm", "farm-b"])
    assert result.exit_code == 0, result.output
    assert "farm farm-b" in result.output
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({**batch_factory("dev-01/a"), "farm_id": "farm-b"}))
    second = {**batch_factory("dev-01/b", seed=3, track_offset=50), "farm_id": "farm-b"}
    (folder / "b.json.gz").write_bytes(gzip.compress(json.dumps(second).encode()))
    stray = tmp_path / "stray.json"  # another farm's batch: refused, nothing stored
    stray.write_text(json.dumps(batch_factory("dev-01/c", seed=4, track_offset=90)))
    result = runner.invoke(app, ["ingest", str(herd), str(stray)])
    assert result.exit_code == 1 and "this record belongs to farm 'farm-b'" in result.output
    result = runner.invoke(app, ["ingest", str(herd), str(folder)])
    assert result.exit_code == 0, result.output
    assert "2 accepted, 0 duplicate, 0 rejected" in result.output
    result = runner.invoke(app, ["ingest", str(herd), str(folder / "a.json")])
    assert "0 accepted, 1 duplicate, 0 rejected" in result.output
    result = runner.invoke(app, ["info", str(herd)])
    assert result.exit_code == 0
    assert "observations" in result.output and "24" in result.output
    # Every byte of the directory is counted (the re-ID index and the journal too), in
    # decimal units as `budget` counts them.
    on_disk = sum(p.stat().st_size for p in herd.rglob("*") if p.is_file())
    assert "(re-ID index)" in result.output
    shown = re.search(r"total\W+[\d,]+\W+([\d.]+) (B|kB|MB|GB)", result.output)
    assert shown is not None, result.output
    size = float(shown.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[shown.group(2)]
    assert abs(size - on_disk) < 0.1 * on_disk
    result = runner.invoke(app, ["migrate", str(herd)])
    assert "up to date" in result.output


def test_rejected_batches_are_listed_and_exit_non_zero(
    tmp_path: Path, batch_factory: Factory
) -> None:
    herd = tmp_path / "herd"
    runner.invoke(app, ["init", str(herd)])
    batch = batch_factory()
    batch["embedder"]["dim"] = 383
    (tmp_path / "bad.json").write_text(json.dumps(batch))
    result = runner.invoke(app, ["ingest", str(herd), str(tmp_path / "bad.json")])
    assert result.exit_code == 1
    assert "0 accepted, 0 duplicate, 1 rejected" in result.output
    assert "embedder: the record holds dinov3-vits16/384 vectors" in result.output


def test_ingest_reads_one_batch_from_stdin(tmp_path: Path, batch_factory: Factory) -> None:
    herd = tmp_path / "herd"
    runner.invoke(app, ["init", str(herd)])
    result = runner.invoke(app, ["ingest", str(herd), "-"], input=json.dumps(batch_factory()))
    assert result.exit_code == 0, result.output
    assert "1 accepted" in result.output


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no herdrecord record at")
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "nothing.json"])
    assert result.exit_code == 2


def test_ingest_of_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    herd = tmp_path / "herd"
    runner.invoke(app, ["init", str(herd)])
    result = runner.invoke(app, ["ingest", str(herd), str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "nope.json: no such file or directory" in result.output


def test_identity_commands_work_end_to_end(tmp_path: Path) -> None:
    from herdrecord.simulation import SimulationConfig, simulate, write_simulation

    sim = simulate(SimulationConfig(animals=8, pens=1, days=2, seed=3, keyframes=False))
    files = write_simulation(sim, tmp_path / "sim")
    herd = tmp_path / "herd"
    runner.invoke(app, ["init", str(herd)])
    result = runner.invoke(app, ["ingest", str(herd), str(files.batches_dir)])
    assert result.exit_code == 0, result.output
    assert "linked" in result.output and "provisional animals" in result.output
    result = runner.invoke(app, ["animals", str(herd)])
    assert "P00001" in result.output
    result = runner.invoke(app, ["review", "list", str(herd)])
    assert result.exit_code == 0 and "review queue" in result.output
    result = runner.invoke(app, ["history", str(herd), "P00001"])
    assert result.exit_code == 0 and "decisions" in result.output
    result = runner.invoke(app, ["review", "rename", str(herd), "P00001", "Peppa"])
    assert result.exit_code == 0
    assert "Peppa" in runner.invoke(app, ["animals", str(herd)]).output
    # A name carrying terminal control sequences shows them escaped, never raw.
    hostile = "Pep\x1b[2J\x1b]0;owned\x07pa\u202eevil"
    result = runner.invoke(app, ["review", "rename", str(herd), "P00002", hostile])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["animals", str(herd)]).output
    assert "\x1b" not in listed and "\u202e" not in listed and "\x07" not in listed
    assert "Pep\\x1b[2J\\x1b]0;owned\\x07pa\\u202eevil" in listed
    result = runner.invoke(app, ["review", "merge", str(herd), "P00001", "P00002", "--by", "vet"])
    assert result.exit_code == 2 and "seen at the same time" in result.output
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(herd), "--out", str(out)])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    tracklets = pq.read_table(out / "tracklets")
    assert {
        "device_id",
        "track_id",
        "pen_id",
        "start",
        "end",
        "animal_id",
        "link_score",
        "link_method",
    } <= set(tracklets.column_names)
    assert tracklets.num_rows == sim.truth_tracklets.num_rows
    assert pq.read_table(out / "animals").num_rows >= 8
    first_file = sorted((out / "tracklets").glob("month=*/*.parquet"))[0]
    assert b"herdrecord.embedder" in (pq.read_schema(first_file).metadata or {})


def test_demo_builds_a_record_with_days_and_farm_events(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    result = runner.invoke(app, ["demo", str(demo_dir), "--animals", "6", "--days", "2"])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and "farm events" in result.output
    record = demo_dir / "record"
    result = runner.invoke(app, ["days", str(record)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["event", "list", str(record), "--kind", "weight"])
    assert result.exit_code == 0 and "weight" in result.output


def test_init_and_export_print_no_dependency_warnings(tmp_path: Path) -> None:
    # Lance logged 14 WARN lines ("No existing dataset ..., it will be created") per init.
    env = {k: v for k, v in os.environ.items() if k not in ("LANCEDB_LOG", "LANCE_LOG", "RUST_LOG")}
    herdrecord = Path(sys.executable).with_name("herdrecord")
    herd = str(tmp_path / "herd")
    for args in (["init", herd], ["export", herd, "--out", str(tmp_path / "out")]):
        done = subprocess.run(
            [str(herdrecord), *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "WARN" not in done.stderr and "lance::" not in done.stderr, done.stderr
