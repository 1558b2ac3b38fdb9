"""Many barns: one record per farm under a fleet root on object storage (moto on loopback);
reads and exports across farms carry farm_id in every row; a batch for another farm is
refused."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import deliver_day_by_day, make_batch
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.query.fleet import fleet_connection, fleet_export, fleet_query, fleet_records
from herdrecord.query.sandbox import run_sql
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import Record, create_record

ROOT = "s3://herd/fleet"
FARMS = {"farm-a": 5, "farm-b": 7}  # farm -> animals
runner = CliRunner()


def _settings(s3: dict[str, str]) -> Settings:
    return Settings(storage_options=s3, retention_enabled=False, lock_timeout_s=5.0)


@pytest.fixture(scope="module")
def fleet(s3: dict[str, str]) -> list[Record]:
    """Two farms' records under the fleet root, each fed its own simulated barn."""
    for seed, (farm, animals) in enumerate(FARMS.items()):
        config = SimulationConfig(
            farm_id=farm,
            animals=animals,
            pens=1,
            days=2,
            seed=40 + seed,
            arrival_rate_per_day=0.0,
            obs_interval_s=300.0,
        )
        record = create_record(f"{ROOT}/{farm}", _settings(s3), farm_id=farm)
        deliver_day_by_day(record, simulate(config).batches)
        _weigh_everyone(record)
        _score_lameness(record)
    return fleet_records(ROOT, _settings(s3))


def _weigh_everyone(record: Record) -> None:
    """Three scale weighings per animal over the two days (the growth query's input)."""
    from datetime import datetime

    from herdrecord.events.rules import EventInput
    from herdrecord.events.store import add_events

    animals = record.table("animals").to_lance().to_table(columns=["animal_id"])
    times = ("2026-09-01T06:00:00+00:00", "2026-09-01T18:00:00+00:00", "2026-09-02T12:00:00+00:00")
    events = [
        EventInput(
            animal_id=animal,
            kind="weight",
            at=datetime.fromisoformat(at),
            author="scale",
            value=60.0 + number + 0.4 * step,
        )
        for number, animal in enumerate(animals.column("animal_id").to_pylist())
        for step, at in enumerate(times)
    ]
    add_events(record, events)


def _score_lameness(record: Record) -> None:
    """Lameness scores that count (2 and 3) and ones that do not: below the threshold, one
    retracted, one corrected down to 1."""
    from datetime import datetime

    from herdrecord.events.rules import EventInput
    from herdrecord.events.store import add_events, correct_event, retract_event

    animals = record.table("animals").to_lance().to_table(columns=["animal_id"])
    ids = sorted(animals.column("animal_id").to_pylist())

    def score(animal: str, value: float, at: str) -> EventInput:
        return EventInput(
            animal_id=animal,
            kind="lameness",
            at=datetime.fromisoformat(at),
            author="vet",
            scale="0-3",
            value=value,
        )

    _, second, _, fourth = add_events(
        record,
        [
            score(ids[0], 2, "2026-09-02T09:00:00+00:00"),
            score(ids[1], 3, "2026-09-02T15:00:00+00:00"),
            score(ids[2], 1, "2026-09-01T10:00:00+00:00"),
            score(ids[3], 3, "2026-09-02T11:00:00+00:00"),
        ],
    ).event_ids
    retract_event(record, second, "vet", "wrong pig")
    correct_event(record, fourth, score(ids[3], 1, "2026-09-02T11:00:00+00:00"))


def test_the_fleet_lists_one_record_per_farm(fleet: list[Record]) -> None:
    assert [r.farm_id for r in fleet] == ["farm-a", "farm-b"]
    assert [r.uri for r in fleet] == [f"{ROOT}/farm-a", f"{ROOT}/farm-b"]


def test_a_batch_for_another_farm_is_refused_and_stores_nothing(fleet: list[Record]) -> None:
    farm_a = fleet[0]
    before = farm_a.table("tracklets").count_rows()
    stray = {**make_batch(batch_id="dev-01/2026-09-09T09"), "farm_id": "farm-b"}
    report = ingest(farm_a, [parse_json(json.dumps(stray).encode(), "stray")])
    (outcome,) = report.outcomes
    assert outcome.status == "rejected"
    assert "farm 'farm-a'" in outcome.problems[0] and "'farm-b'" in outcome.problems[0]
    assert farm_a.table("tracklets").count_rows() == before


def test_views_across_farms_carry_farm_id(fleet: list[Record]) -> None:
    con = fleet_connection(fleet)
    per_farm = dict(con.sql("SELECT farm_id, count(*) FROM animals GROUP BY 1").fetchall())
    for record in fleet:
        own = record.table("animals").count_rows()
        assert per_farm[record.farm_id] == own > 0
    assert con.sql("SELECT * FROM days LIMIT 1").columns[0] == "farm_id"
    # Animal ids are a farm's own (two farms both have an A-1): an animal across the fleet is
    # (farm_id, animal_id), and joins say so.
    joined = con.sql(
        "SELECT count(*) FROM tracklets t JOIN animals a USING (farm_id, animal_id)"
    ).fetchall()
    linked = sum(r.table("tracklets").count_rows() - _unlinked(r) for r in fleet)
    assert joined == [(linked,)]


def _unlinked(record: Record) -> int:
    from herdrecord.store.linktable import current_links

    links = current_links(record)
    return sum(1 for a in links.column("animal_id").to_pylist() if a is None)


def test_sandboxed_sql_runs_across_the_fleet(fleet: list[Record]) -> None:
    result = run_sql(
        ROOT,
        "SELECT farm_id, count(DISTINCT animal_id) AS animals FROM days GROUP BY 1 ORDER BY 1",
        fleet[0].settings,
        fleet=True,
    )
    rows = result.table.to_pylist()
    assert [r["farm_id"] for r in rows] == ["farm-a", "farm-b"]
    assert all(r["animals"] > 0 for r in rows)


def test_a_named_query_runs_on_every_farm(fleet: list[Record]) -> None:
    params = {"days": "7", "min_days": "2", "as_of": "2026-09-03"}
    rows = fleet_query(fleet, "growth", params)
    assert rows.column_names[0] == "farm_id"
    per_farm = {farm: rows.column("farm_id").to_pylist().count(farm) for farm in FARMS}
    for record in fleet:  # every weighed animal of every farm, each once
        assert per_farm[record.farm_id] == record.table("animals").count_rows() > 0
    assert set(rows.column("adg_source").to_pylist()) == {"scale"}


def test_the_fleet_export_reads_as_one_dataset_per_table(
    fleet: list[Record], tmp_path: Path
) -> None:
    out = tmp_path / "fleet-export"
    result = fleet_export(fleet, out)
    assert sorted(result.rows) == ["farm-a", "farm-b"]
    assert (out / "farms" / "farm-b" / "manifest.json").is_file()
    # DuckDB over the Parquet export: farm_id (and month) come from the hive directories.
    days = duckdb.sql(
        f"SELECT farm_id, count(*) AS n FROM read_parquet('{out}/days/**/*.parquet', "
        "hive_partitioning = true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert days == [(farm, result.rows[farm]["days"]) for farm in sorted(FARMS)]
    animals = pl.scan_parquet(out / "animals" / "**" / "*.parquet", hive_partitioning=True)
    counted = animals.group_by("farm_id").len().collect()
    assert dict(counted.iter_rows()) == {f: result.rows[f]["animals"] for f in FARMS}


def test_the_fleet_commands(fleet: list[Record], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERDRECORD_STORAGE_OPTIONS", json.dumps(fleet[0].settings.storage_options))
    farms = runner.invoke(cli_app, ["fleet", "farms", ROOT])
    assert farms.exit_code == 0, farms.output
    assert "farm-a" in farms.output and "farm-b" in farms.output
    sql = runner.invoke(
        cli_app,
        [
            "fleet",
            "sql",
            ROOT,
            "SELECT farm_id, count(*) AS n FROM animals GROUP BY 1",
            "--format",
            "jsonl",
        ],
    )
    assert sql.exit_code == 0, sql.output
    counted = {json.loads(line)["farm_id"] for line in sql.stdout.splitlines() if line}
    assert counted == set(FARMS)
    nothing = runner.invoke(cli_app, ["fleet", "farms", "s3://herd/no-fleet-here"])
    assert nothing.exit_code != 0 and "holds no farm records" in nothing.output


def test_an_empty_root_is_a_clear_error(s3: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="holds no farm records"):
        fleet_records("s3://herd/empty-root", _settings(s3))


RAY_START_LIMIT_S = 180  # a local Ray comes up in 10-40 s here; past this it is not coming


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    """A local Ray for this module's engine tests (what RAY_ADDRESS unset gives).

    Its start is bounded: a child process first starts and stops one the same way, and a
    sandbox where Ray cannot bring up its processes (CI's once hung on it for an hour) skips
    these tests, saying so, instead of stalling the run. Anywhere Ray starts they run."""
    pytest.importorskip("ray", reason="the fleet extra: pip install 'herdrecord[fleet]'")
    import ray

    from herdrecord.query.fleet_engine import start_engine

    trial = "from herdrecord.query.fleet_engine import start_engine as s; s(); import ray"
    trial += "; ray.shutdown()"
    child = subprocess.Popen([sys.executable, "-c", trial], start_new_session=True)
    try:
        child.wait(timeout=RAY_START_LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        ray_cli = str(Path(sys.executable).with_name("ray"))
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)
        pytest.skip(f"a local Ray did not start within {RAY_START_LIMIT_S} s here")
    assert child.returncode == 0, "a local Ray failed to start (its error is above)"
    start_engine()
    yield
    ray.shutdown()


def _example() -> Any:
    import importlib.util

    path = Path(__file__).parents[1] / "examples" / "fleet_scale_out.py"
    spec = importlib.util.spec_from_file_location("fleet_scale_out", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_ray_data_over_lance_gives_duckdbs_answer_over_the_export(
    fleet: list[Record], engine: None, tmp_path: Path
) -> None:
    """examples/fleet_scale_out.py on the two-farm fleet on S3: Ray Data over each farm's
    Lance tables answers both questions as DuckDB does over the fleet's Parquet export."""
    example = _example()
    fleet_export(fleet, tmp_path / "export")
    by_duckdb = example.by_duckdb(tmp_path / "export")
    by_ray = example.by_ray(ROOT, fleet[0].settings)
    assert by_duckdb.keys() == by_ray.keys() and len(by_duckdb) >= 2
    for key, (total, n) in by_duckdb.items():
        assert by_ray[key][1] == n
        assert by_ray[key][0] == pytest.approx(total, abs=1e-4)

    lame = example.lameness_by_ray(ROOT, fleet[0].settings).to_pylist()
    expected = example.lameness_by_duckdb(tmp_path / "export").to_pylist()
    assert [row["farm_id"] for row in lame] == list(FARMS)
    for got, want in zip(lame, expected, strict=True):
        assert got == pytest.approx(want)
        # One score of 2 counts on each farm: the 3 is retracted, the other corrected to 1.
        assert got["cases"] == 1 and got["case_days"] == 2
        assert got["controls"] == FARMS[got["farm_id"]] - 1
        assert got["control_days"] == 2 * got["controls"]


def test_the_engine_counts_only_scores_in_force_at_the_threshold(
    fleet: list[Record], engine: None
) -> None:
    from herdrecord.query.fleet_engine import lying_before_lameness

    by_farm = {r["farm_id"]: r for r in lying_before_lameness(fleet, min_score=1).to_pylist()}
    # At 1: the score of 1 and the 3 corrected to 1 count too; the retracted 3 still does not.
    assert by_farm["farm-a"]["cases"] == by_farm["farm-b"]["cases"] == 3
    none = lying_before_lameness(fleet, min_score=4).to_pylist()
    assert [(r["farm_id"], r["cases"], r["case_lying_share"]) for r in none] == [
        ("farm-a", 0, None),
        ("farm-b", 0, None),
    ]


def test_the_fleet_command_answers_the_lameness_question_as_the_engine_and_duckdb(
    fleet: list[Record], engine: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`herdrecord fleet lying-before-lameness ROOT` prints the engine's rows, which are
    DuckDB's over the fleet's Parquet export, as a table or whole as JSON and CSV."""
    from herdrecord.query.fleet_engine import lying_before_lameness

    monkeypatch.setenv("HERDRECORD_STORAGE_OPTIONS", json.dumps(fleet[0].settings.storage_options))
    command = ["fleet", "lying-before-lameness", ROOT]
    asked = runner.invoke(
        cli_app, [*command, "--min-score", "1", "--days", "2", "--format", "json"]
    )
    assert asked.exit_code == 0, asked.output
    rows = json.loads(asked.stdout)
    assert rows == lying_before_lameness(fleet, min_score=1, days=2).to_pylist()
    fleet_export(fleet, tmp_path / "export")
    by_duckdb = _example().lameness_by_duckdb(tmp_path / "export", min_score=1, days=2)
    assert [row["farm_id"] for row in rows] == list(FARMS)
    for got, want in zip(rows, by_duckdb.to_pylist(), strict=True):
        assert got == pytest.approx(want)
        assert got["cases"] == 3  # the scores of 1 count at 1, and the 3 corrected to 1
    assert "cases: animals with a lameness score >= 1" in asked.stderr

    default = runner.invoke(cli_app, [*command, "--format", "csv"])
    assert default.exit_code == 0, default.output
    read = list(csv.DictReader(io.StringIO(default.stdout)))
    expected = lying_before_lameness(fleet).to_pylist()  # at 2, over 3 days
    assert [(r["farm_id"], int(r["cases"]), int(r["control_days"])) for r in read] == [
        (r["farm_id"], r["cases"], r["control_days"]) for r in expected
    ]
    shown = runner.invoke(cli_app, command)
    assert shown.exit_code == 0, shown.output
    case_share = expected[0]["case_lying_share"]
    assert "farm-a" in shown.stdout and f"{case_share:.3f}" in shown.stdout
    bad = runner.invoke(cli_app, [*command, "--days", "0"])
    assert bad.exit_code == 2 and "--days" in bad.output


def test_the_fleet_command_without_the_extra_says_what_to_install(
    fleet: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where Ray is not installed, the command fails in one line naming the extra."""
    monkeypatch.setenv("HERDRECORD_STORAGE_OPTIONS", json.dumps(fleet[0].settings.storage_options))
    for module in ("lance_ray", "ray", "ray.data"):  # None in sys.modules: not importable
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "herdrecord.query.fleet_engine", raising=False)
    result = runner.invoke(cli_app, ["fleet", "lying-before-lameness", ROOT])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: fleet analytics run on Ray Data (lance_ray is not installed) — "
        "pip install 'herdrecord[fleet]'"
    ]


def test_the_engine_reads_no_batch_table(fleet: list[Record]) -> None:
    pytest.importorskip("ray", reason="the fleet extra: pip install 'herdrecord[fleet]'")
    from herdrecord.query.fleet_engine import fleet_scan

    with pytest.raises(InvalidInput, match="tracklets holds uncommitted rows"):
        fleet_scan(fleet, "tracklets", ["track_id"])


def test_edge_records_push_to_their_farms_central_records_on_s3(
    s3: dict[str, str], tmp_path: Path
) -> None:
    """Two barns' edge boxes (local records with an outbox) push through `herdrecord push`
    to their farms' central services, each serving a record on S3; the fleet then reads both
    farms, and a push sent to the wrong farm stores nothing there."""
    from herdrecord.api.keys import add_key
    from herdrecord.store.record import open_record
    from servers import start_server, stop_server

    root = "s3://herd/pushed"
    env = {"HERDRECORD_STORAGE_OPTIONS": json.dumps(s3), "HERDRECORD_API_LINK_IDLE_S": "3600"}
    centrals: dict[str, tuple[str, str]] = {}
    processes = []
    try:
        for farm in FARMS:
            central = create_record(f"{root}/{farm}", _settings(s3), farm_id=farm)
            key = add_key(central, f"{farm}-edge", "edge", "test")[1]
            url, process = start_server(central.uri, tmp_path / f"{farm}.log", **env)
            processes.append(process)
            centrals[farm] = (url, key)
        edges: dict[str, Path] = {}
        for seed, farm in enumerate(FARMS):
            config = SimulationConfig(
                farm_id=farm, animals=3, pens=1, days=1, seed=60 + seed, obs_interval_s=600.0
            )
            outgoing = tmp_path / farm / "outgoing"
            outgoing.mkdir(parents=True)
            for number, batch in enumerate(simulate(config).batches):
                (outgoing / f"{number:04d}.json").write_text(json.dumps(batch))
            edge = tmp_path / farm / "edge"
            create_record(str(edge), Settings(), farm_id=farm)
            outbox = {"HERDRECORD_EDGE_OUTBOX": "true"}
            ingested = runner.invoke(cli_app, ["ingest", str(edge), str(outgoing)], env=outbox)
            assert ingested.exit_code == 0, ingested.output
            edges[farm] = edge
        # A push to the wrong farm's service is refused whole, and stores nothing there.
        url_a, key_a = centrals["farm-a"]
        wrong = runner.invoke(
            cli_app, ["push", str(edges["farm-b"]), "--to", url_a, "--key", key_a]
        )
        assert wrong.exit_code == 1 and "farm 'farm-a'" in wrong.output
        assert open_record(f"{root}/farm-a", _settings(s3)).committed_batch_ids().to_pylist() == []
        for farm, edge in edges.items():
            url, key = centrals[farm]
            pushed = runner.invoke(
                cli_app, ["push", str(edge), "--to", url, "--key", key, "--retry-refused"]
            )
            assert pushed.exit_code == 0, pushed.output
    finally:
        for process in processes:
            stop_server(process)
    fleet = fleet_records(root, _settings(s3))
    for record in fleet:
        edge = open_record(str(edges[record.farm_id]), Settings())
        assert sorted(record.committed_batch_ids().to_pylist()) == sorted(
            edge.committed_batch_ids().to_pylist()
        )
    counts = dict(
        fleet_connection(fleet).sql("SELECT farm_id, count(*) FROM batches GROUP BY 1").fetchall()
    )
    assert counts == {
        farm: open_record(str(edges[farm]), Settings()).table("batches").count_rows()
        for farm in FARMS
    }


def test_a_local_fleet_through_the_cli(tmp_path: Path) -> None:
    """A fleet in a directory: `farm --set` names a record made with the default id, bad
    ids are refused in one line, and `fleet query` / `fleet export` read every farm."""
    root = tmp_path / "fleet"
    made = runner.invoke(cli_app, ["init", str(root / "north")])
    assert made.exit_code == 0, made.output
    named = runner.invoke(cli_app, ["farm", str(root / "north"), "--set", "acme-north"])
    assert named.exit_code == 0 and "farm acme-north" in named.output
    bad = runner.invoke(cli_app, ["farm", str(root / "north"), "--set", "../evil"])
    assert bad.exit_code == 2 and "farm id '../evil'" in bad.output
    assert "Traceback" not in bad.output
    refused = runner.invoke(cli_app, ["init", str(root / "x"), "--farm", "acme/south"])
    assert refused.exit_code == 2 and not (root / "x").exists()
    south = create_record(str(root / "south"), Settings(), farm_id="acme-south")
    config = SimulationConfig(farm_id="acme-south", animals=3, pens=1, days=2, seed=7)
    deliver_day_by_day(south, simulate(config).batches)
    _weigh_everyone(south)
    moved = runner.invoke(cli_app, ["farm", str(root / "south"), "--set", "acme-west"])
    assert moved.exit_code == 2 and "holds batches of farm acme-south" in moved.output
    query = runner.invoke(
        cli_app,
        [
            "fleet",
            "query",
            str(root),
            "growth",
            "-p",
            "days=7",
            "-p",
            "min_days=2",
            "--format",
            "csv",
        ],
    )
    assert query.exit_code == 0, query.output
    rows = list(csv.DictReader(io.StringIO(query.stdout)))
    assert next(iter(rows[0])) == "farm_id"
    assert {row["farm_id"] for row in rows} == {"acme-south"}
    assert len(rows) == south.table("animals").count_rows()
    out = tmp_path / "export"
    exported = runner.invoke(cli_app, ["fleet", "export", str(root), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert (out / "days" / "farm_id=acme-south").is_dir()
    assert not (out / "days" / "farm_id=acme-north").exists()  # no days there: no files
    again = runner.invoke(cli_app, ["fleet", "export", str(root), "--out", str(out)])
    assert again.exit_code == 2 and "not empty" in again.output
