"""Instant commands: `herdrecord`, `--help` and `--version` answer from the manifest without
importing LanceDB, DuckDB, torch or FastAPI, and say exactly what the full app says."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from herdrecord.cli import load_app
from herdrecord.cli.manifest import manifest_of, read_manifest

HEAVY = ("lancedb", "lance", "torch", "fastapi", "duckdb", "faiss", "pyarrow", "transformers")
ENV = {**os.environ, "COLUMNS": "100", "TERM": "dumb", "HF_HUB_OFFLINE": "1"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=ENV, check=False
    )


def test_the_manifest_is_the_commands() -> None:
    assert read_manifest() == manifest_of(load_app()), (
        "cli/commands.json is stale: run `make schemas`"
    )


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], []])
def test_quick_answers_import_nothing_heavy(args: list[str]) -> None:
    result = _run("-X", "importtime", "-m", "herdrecord", *args)
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize("args", [["--help"], ["--version"], []])
def test_quick_answers_are_the_full_app_s(args: list[str]) -> None:
    quick = _run("-m", "herdrecord", *args)
    full = _run(
        "-c",
        "import sys; from herdrecord.cli import load_app; "
        f"load_app()({args!r}, prog_name='herdrecord')",
    )
    assert (quick.returncode, quick.stdout, quick.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    )
    assert "ingest" in quick.stdout or args == ["--version"]


@pytest.mark.parametrize(
    "args",
    [
        ["animals", "/no/such/herd"],
        ["review", "list", "/no/such/herd"],
        ["timeline", "/no/such/herd", "P00001"],
        ["event", "list", "/no/such/herd"],
        ["info", "/no/such/herd"],
    ],
)
def test_a_read_command_imports_only_what_reading_needs(args: list[str]) -> None:
    # Only the command's own module is imported, and records are read as Lance datasets:
    # no LanceDB (a second to import), no linking (the answers' re-solving), no torch or
    # FastAPI. (The record is missing: what is imported before the command runs counts.)
    result = _run("-X", "importtime", "-m", "herdrecord", *args)
    assert result.returncode == 2, result.stderr[-500:]
    modules = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {m.split(".")[0] for m in modules} & {"lancedb", "torch", "fastapi", "transformers"}
    assert not heavy, sorted(heavy)
    assert "herdrecord.linking.run" not in modules
