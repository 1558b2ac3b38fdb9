"""The CLI's consoles: a message written to a pipe, a log or the runner is never wrapped or
cut, whatever COLUMNS says and however long the record's path; a terminal still wraps."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.table import Table
from typer.testing import CliRunner

from herdrecord.cli import app
from herdrecord.cli.console import CliConsole

runner = CliRunner()
NARROW = {"COLUMNS": "40"}


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def long_record(tmp_path: Path) -> str:
    """The path of a fresh record, at least 150 characters long, made by `herdrecord init`."""
    folder = tmp_path / ("a-rather-long-folder-name-for-a-farm-" * 5)
    path = str(folder / "herd")
    assert len(path) >= 150
    result = runner.invoke(app, ["init", path], env=NARROW)
    assert result.exit_code == 0, result.output
    assert f"created record {path} (schema" in result.output
    return path


@pytest.fixture
def terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """COLUMNS=40, and nothing in the environment that overrides rich's terminal detection."""
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("TERM", "xterm")
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)


def test_migrate_through_a_pipe_keeps_its_message_on_one_line(long_record: str) -> None:
    env = {**os.environ, "COLUMNS": "40"}
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "herdrecord", "migrate", long_record],
        capture_output=True,  # stdout and stderr are pipes, not a terminal
        env=env,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{long_record}: up to date, nothing to migrate"]


def test_runner_messages_keep_a_long_record_path_on_one_line(long_record: str) -> None:
    migrated = runner.invoke(app, ["migrate", long_record], env=NARROW)
    assert migrated.exit_code == 0, migrated.output
    assert migrated.output.splitlines() == [f"{long_record}: up to date, nothing to migrate"]
    farm = runner.invoke(app, ["farm", long_record], env=NARROW)
    assert farm.output.splitlines() == [f"{long_record}: no farm yet: its first batch names it"]
    info = runner.invoke(app, ["info", long_record], env=NARROW)
    assert info.exit_code == 0, info.output
    lines = info.output.splitlines()
    assert long_record in lines  # the table's title, whole, on a line of its own
    assert "…" not in info.output
    missing = runner.invoke(app, ["info", long_record + "-missing"], env=NARROW)
    assert missing.exit_code == 2
    said = [line for line in missing.output.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith(f"error: no herdrecord record at {long_record}-")


def test_a_console_writing_to_no_terminal_neither_wraps_nor_cuts(terminal_env: None) -> None:
    stream = io.StringIO()
    console = CliConsole(file=stream)
    message = "the record at " + "/very/long" * 20 + " is up to date, nothing to migrate"
    console.print(message)
    table = Table("tracklet", "animal")
    table.add_row("dev-04:cam1-" + "0" * 60, "P00001")
    console.print(table)
    lines = stream.getvalue().splitlines()
    assert lines[0] == message
    assert any("dev-04:cam1-" + "0" * 60 in line for line in lines[1:])
    assert "…" not in stream.getvalue()
    assert max(len(line) for line in lines[1:]) < 100  # the table is not stretched to the width


def test_a_terminal_still_wraps_at_its_width(terminal_env: None) -> None:
    stream = _Terminal()
    console = CliConsole(file=stream, color_system=None)
    console.print("word " * 30)
    lines = stream.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 40 for line in lines)


def test_the_width_follows_the_stream_written_to_now(terminal_env: None) -> None:
    console = CliConsole(file=io.StringIO())
    assert console.width > 10_000
    console.file = _Terminal()
    assert console.width == 40
