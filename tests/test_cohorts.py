"""Named cohort queries against the simulator's truth on one barn with planted lameness,
disease, growth differences, heats and a near-twin; parameter checks; the query command."""

from __future__ import annotations

import csv
import io
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.contract.parquet import bulk_table_from_json
from herdrecord.errors import InvalidInput, UnknownAnimal, UnknownQuery
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import read_file
from herdrecord.linking.run import link_pending
from herdrecord.query.cohorts import (
    META_PARAMS,
    META_QUERY,
    InvalidParameters,
    bind_params,
    get_query,
    list_queries,
    lookalike_animals,
    parse_header,
    run_query,
)
from herdrecord.query.views import connect
from herdrecord.simulation import Simulation, SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record, create_record, open_record

CONFIG = SimulationConfig(
    animals=24,
    pens=3,
    days=28,
    seed=5,
    lameness_rate_per_day=0.02,
    disease_rate_per_day=0.01,
    arrival_rate_per_day=0.0,
    breeding=True,
    sows=8,
    keyframes=False,
    obs_interval_s=120.0,  # a quarter of the default rows: shares come out the same, faster
)
QUERIES = {"disease", "growth", "lameness", "lookalikes", "reproduction"}

runner = CliRunner()


@dataclass(frozen=True)
class Barn:
    """The record of a simulated barn and the truth it was simulated from."""

    path: Path
    true_animal: pa.Table  # animal_id (record) -> true_id (simulator), main record animal
    truth_days: pa.Table
    truth_animals: pa.Table


@pytest.fixture(scope="module")
def barn(tmp_path_factory: pytest.TempPathFactory) -> Barn:
    """A barn ingested and linked one day at a time, with the simulator's events recorded."""
    sim = simulate(CONFIG)
    folder = tmp_path_factory.mktemp("cohorts")
    # Retention off: queries read days, and days derive the same either way; it saves time.
    record = create_record(str(folder / "herd"), Settings(retention_enabled=False))
    by_day: dict[str, list[dict[str, object]]] = {}
    for batch in sim.batches:
        by_day.setdefault(str(batch["batch_id"]).split("/")[1][:10], []).append(batch)
    for day in sorted(by_day):
        # The bulk (Parquet) form of the contract: the same checks, far less parsing.
        file = folder / f"{day}.parquet"
        pq.write_table(bulk_table_from_json(by_day[day]), file)
        report = ingest(record, read_file(file, record.settings.max_batch_bytes))
        assert report.count("accepted") == len(by_day[day])
        link_pending(record)
    true_animal = _true_animal(record, sim)
    _record_truth_events(record, sim, true_animal)
    return Barn(folder / "herd", true_animal, sim.truth_days, sim.truth_animals)


def _true_animal(record: Record, sim: Simulation) -> pa.Table:
    """Return each true animal's main record animal (the one holding most of its time)."""
    con = duckdb.connect()
    con.register("links", current_links(record))
    con.register("truth", sim.truth_tracklets)
    return con.sql(
        "SELECT arg_max(animal_id, s) AS animal_id, t AS true_id FROM (SELECT l.animal_id, "
        'truth.animal_id AS t, sum(epoch(truth."end") - epoch(truth.start)) AS s FROM truth '
        "JOIN links l USING (device_id, track_id) WHERE l.animal_id IS NOT NULL GROUP BY ALL) "
        "GROUP BY t"
    ).to_arrow_table()


def _record_truth_events(record: Record, sim: Simulation, true_animal: pa.Table) -> None:
    """Store the simulator's events (scores, diagnoses, weights, heats ...) under the record's
    animal ids, as the farm's people would have entered them."""
    record_of = dict(
        zip(
            true_animal.column("true_id").to_pylist(),
            true_animal.column("animal_id").to_pylist(),
            strict=True,
        )
    )
    now = datetime.now(UTC)
    rows = [
        {
            **{k: e[k] for k in ("kind", "at", "value", "scale", "code", "note")},
            "animal_id": record_of[e["animal_id"]],
            "author": e["author"] or "sim",
            "event_id": uuid.uuid4().hex,
            "recorded_at": now,
        }
        for e in sim.truth_events.to_pylist()
        if e["animal_id"] in record_of
    ]
    events = record.table("events")
    events.add(pa.Table.from_pylist(rows, schema=events.schema))


@pytest.fixture(scope="module")
def record(barn: Barn) -> Record:
    """The barn's record; the queries only read it."""
    return open_record(str(barn.path), Settings(retention_enabled=False))


def _with_truth(record: Record, barn: Barn) -> duckdb.DuckDBPyConnection:
    """Return the record's views plus the truth: `m` (animal_id -> true_id), `t` (true
    days), `ta` (true animals)."""
    con = connect(record)
    con.register("m", barn.true_animal)
    con.register("t", barn.truth_days)
    con.register("ta", barn.truth_animals)
    return con


def _rows(record: Record, name: str, **params: object) -> list[dict[str, object]]:
    table = run_query(record, name, {k: str(v) for k, v in params.items()})
    return list(table.to_pylist())


# --- the queries and their headers ------------------------------------------------------


def test_every_query_is_listed_with_typed_parameters() -> None:
    queries = {q.name: q for q in list_queries()}
    assert set(queries) == QUERIES
    for query in queries.values():
        assert query.description and query.params
        for param in query.params:
            assert param.meaning
            assert param.required or param.default is None or _is_typed(param.type, param.default)
    assert queries["lookalikes"].sql is None  # FAISS, in Python, declared like the others
    days = {p.name: p for p in queries["lameness"].params}["days"]
    assert (days.type, days.default, days.low, days.high) == ("integer", 3, 1.0, 30.0)
    assert days.signature() == "days integer = 3 [1, 30]"
    animal = {p.name: p for p in queries["lookalikes"].params}["animal"]
    assert animal.required and animal.signature() == "animal text"


def _is_typed(type_: str, value: object) -> bool:
    kinds = {"integer": int, "double": float, "text": str, "date": date}
    return isinstance(value, kinds[type_])


def test_the_sql_files_ship_inside_the_package() -> None:
    files = {f.name for f in (resources.files("herdrecord.query") / "queries").iterdir()}
    assert files >= {f"{name}.sql" for name in QUERIES - {"lookalikes"}}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- name: q\n-- description: d\nSELECT 1", None),
        ("-- description: d\nSELECT 1", "needs `-- name:`"),
        ("-- name: q\n-- description: d\n-- param: n integer = 1 -- n\nSELECT 1", "used []"),
        ("-- name: q\n-- description: d\nSELECT $n", "declared [] but used ['n']"),
        ("-- name: q\n-- description: d\n-- param: n number = 1 -- n\nSELECT $n", "TYPE one of"),
        ("-- name: q\n-- description: d\n-- param: n integer = 9 [1, 5] -- n\nSELECT $n", "9"),
        ("-- name: q\n-- description: d\n-- param: n text = c {a, b} -- n\nSELECT $n", "one of"),
    ],
)
def test_a_malformed_header_is_refused(text: str, problem: str | None) -> None:
    if problem is None:
        assert parse_header(text, "q.sql").name == "q"
        return
    with pytest.raises(ValueError, match=r"q\.sql") as caught:
        parse_header(text, "q.sql")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("lamenes", {}, "no named query 'lamenes' (did you mean lameness?); the queries are"),
        ("lameness", {"dayz": "3"}, "no parameter 'dayz' (did you mean days?); its parameters"),
        ("lookalikes", {}, "animal is required (text: the animal to compare); give animal=VALUE"),
        ("lameness", {"days": "abc"}, "days='abc' is not a whole number"),
        ("lameness", {"days": "2.5"}, "days='2.5' is not a whole number"),
        ("lameness", {"change_pct": "lots"}, "change_pct='lots' is not a number"),
        ("lameness", {"change_pct": "nan"}, "change_pct='nan' is not a finite number"),
        ("growth", {"as_of": "2026-13-01"}, "as_of='2026-13-01' is not a date; write YYYY-MM-DD"),
        ("lameness", {"days": "90"}, "days=90 is out of range: give 1 to 30"),
        ("growth", {"slow_percentile": "-5"}, "slow_percentile=-5 is out of range: give 0 to 100"),
        ("lameness", {"measure": "weight"}, "give one of lying_share, activity_index, gait_mean"),
        ("disease", {"code": " "}, "code is empty"),
        ("lameness", {"days": "x", "min_score": "9"}, "2 problems with the parameters"),
    ],
)
def test_parameters_are_checked_with_one_message_each(
    record: Record, name: str, params: dict[str, str], message: str
) -> None:
    expected = UnknownQuery if name not in QUERIES else InvalidParameters
    with pytest.raises(expected) as caught:
        run_query(record, name, params)
    assert message in str(caught.value)
    assert isinstance(caught.value, InvalidInput)  # the CLI and the API print it, no traceback


def test_parameters_are_typed_and_bound_never_formatted(record: Record) -> None:
    values = bind_params(get_query("growth"), {"as_of": "2026-09-20", "days": " 14 "})
    assert values == {"days": 14, "as_of": date(2026, 9, 20), "slow_percentile": 25.0,
                      "min_days": 7}  # fmt: skip
    # A quote in a text value is a value: no diagnosis has that code, so no rows.
    assert _rows(record, "disease", code="PRRS' OR '1'='1") == []
    table = run_query(record, "growth", {"days": "14"})
    assert table.schema.metadata[META_QUERY] == b"growth"
    assert json.loads(table.schema.metadata[META_PARAMS])["days"] == 14


# --- what each query finds, against the truth ---------------------------------------------


def _truly_lame_scored(record: Record, barn: Barn, min_days_before: int) -> set[str]:
    """Return the animals scored >= 2 while truly lame, with a baseline's worth of record
    before the score."""
    con = _with_truth(record, barn)
    return {
        str(a)
        for (a,) in con.sql(
            "SELECT DISTINCT e.animal_id FROM events e JOIN m USING (animal_id) "
            "JOIN t ON t.animal_id = m.true_id AND t.day = CAST(timezone('UTC', e.\"at\") AS DATE) "
            "WHERE e.kind = 'lameness' AND e.value >= 2 AND t.lame_severity >= 1 "
            "AND t.day >= (SELECT min(day) FROM days) + $before",
            params={"before": min_days_before},
        ).fetchall()
    }


def _controls_changed(rows: list[dict[str, object]]) -> float:
    changed = sum(int(str(r["controls_changed"])) for r in rows)
    return changed / max(1, sum(int(str(r["controls"])) for r in rows))


def test_lameness_lists_most_truly_lame_animals_and_few_controls_change(
    record: Record, barn: Barn
) -> None:
    lame = _truly_lame_scored(record, barn, min_days_before=10)  # baseline 7 + window 3
    assert len(lame) >= 5
    rows = _rows(record, "lameness")  # lying share up more than 5 %
    found = {str(r["animal_id"]) for r in rows}
    # Lying share is a blunt sign (seed 5: 4 of 6 lame animals, a quarter of controls move
    # as much); the cases' rise stands well clear of the controls' mean.
    assert len(found & lame) / len(lame) >= 0.5
    assert _controls_changed(rows) <= 0.35
    mean = sum(float(str(r["change_pct"])) for r in rows) / len(rows)
    controls = [float(str(r["controls_change_pct"])) for r in rows]
    assert mean - sum(controls) / len(controls) >= 5
    assert all(float(str(r["change_pct"])) > 5 and r["measure"] == "lying_share" for r in rows)

    by_gait = _rows(record, "lameness", measure="gait_mean", change_pct=50)
    found = {str(r["animal_id"]) for r in by_gait}
    assert len(found & lame) / len(lame) >= 0.8  # seed 5: all 6
    assert _controls_changed(by_gait) <= 0.2  # seed 5: 11 %


def test_lameness_by_gait_is_precise_among_every_scored_animal(record: Record, barn: Barn) -> None:
    # min_score 0: the weekly herd scoring gives every animal a score, lame or sound.
    rows = run_query(
        record, "lameness", {"min_score": "0", "measure": "gait_mean", "change_pct": "50"}
    )
    con = _with_truth(record, barn)
    con.register("q", rows)
    listed, lame = con.sql(
        "SELECT count(*), count(*) FILTER (lame) FROM (SELECT (SELECT max(t.lame_severity) "
        "FROM t WHERE t.animal_id = m.true_id AND t.day BETWEEN q.window_from AND q.window_to) "
        ">= 1 AS lame FROM q JOIN m USING (animal_id))"
    ).fetchall()[0]
    assert listed >= 8
    assert lame / listed >= 0.8  # seed 5: 12 of 12


def test_disease_shows_eating_and_activity_falling_beyond_the_controls(
    record: Record, barn: Barn
) -> None:
    rows = run_query(record, "disease", {})
    con = _with_truth(record, barn)
    con.register("q", rows)
    n, ill, changed, eating_excess, controls_eating = con.sql(
        "SELECT count(*), avg((SELECT bool_or(t.sick OR t.lame) FROM t WHERE t.animal_id = "
        "m.true_id AND t.day BETWEEN q.window_from AND q.window_to)::INT), avg(changed::INT), "
        "avg(eating_excess_pct), avg(controls_eating_change_pct) FROM q JOIN m USING (animal_id)"
    ).fetchall()[0]
    assert n >= 10
    assert ill >= 0.9  # diagnoses follow episodes: the truth agrees they were ill
    # Daily eating varies by a third in the simulator (bouts are few), so a healthy pen-mate
    # "changes" about one time in four; the diagnosed fall far more often and further.
    assert changed >= 0.6  # seed 5: 16 of 19
    assert _controls_changed(rows.to_pylist()) <= 0.35  # seed 5: 25 %
    assert eating_excess <= -20 and abs(controls_eating) <= 12
    prrs = _rows(record, "disease", code="PRRS")
    assert prrs and {r["code"] for r in prrs} == {"PRRS"}


def test_growth_ranks_animals_by_their_true_gain_and_flags_the_slow(
    record: Record, barn: Barn
) -> None:
    rows = run_query(record, "growth", {})
    con = _with_truth(record, barn)
    con.register("q", rows)
    con.sql(
        "CREATE TABLE g AS SELECT q.*, (SELECT regr_slope(t.weight_kg, t.day - q.first_day) "
        "FROM t WHERE t.animal_id = m.true_id AND t.day BETWEEN q.first_day AND q.last_day) "
        "AS true_adg FROM q JOIN m USING (animal_id) JOIN ta ON ta.animal_id = m.true_id "
        "WHERE ta.role = 'grower'"
    )
    n, correlation, error = con.sql(
        "SELECT count(*), corr(adg_kg_d, true_adg), median(abs(adg_kg_d - true_adg)) FROM g"
    ).fetchall()[0]
    assert n >= 20
    assert correlation >= 0.75  # seed 5: 0.92
    assert error <= 0.1  # kg/day
    slow, below, pens = con.sql(
        "SELECT count(*), avg((true_adg < (SELECT median(h.true_adg) FROM g h "
        "WHERE h.pen_id = g.pen_id))::INT), count(DISTINCT pen_id) FROM g WHERE slow"
    ).fetchall()[0]
    assert pens == CONFIG.pens and slow >= CONFIG.pens
    assert below >= 0.7  # seed 5: all 6 flagged grow slower than their pen's median


def test_reproduction_finds_sows_in_heat(record: Record, barn: Barn) -> None:
    con = _with_truth(record, barn)
    first = con.sql("SELECT min(day) FROM days").fetchall()[0][0]
    heats = found = false_alarms = others = 0
    # Each day that has a baseline (10 days) behind its 2 recent days, judged as of that day.
    for offset in range(12, CONFIG.days):
        as_of = first + timedelta(days=offset)
        con.register("q", run_query(record, "reproduction", {"as_of": str(as_of)}))
        for suspected, heat in con.sql(
            "SELECT heat_suspected, coalesce((SELECT bool_or(t.sow_state = 'oestrus') FROM t "
            "WHERE t.animal_id = m.true_id AND t.day BETWEEN $as_of - 1 AND $as_of), false) "
            "FROM q JOIN m USING (animal_id) WHERE movement_change_pct IS NOT NULL",
            params={"as_of": as_of},
        ).fetchall():
            heats += heat
            found += heat and suspected
            others += not heat
            false_alarms += suspected and not heat
    assert heats >= 6
    assert found / heats >= 0.5  # seed 5: 6 of 9 sow-days in heat
    assert false_alarms / others <= 0.1  # seed 5: 4 of 79 sow-days out of heat
    recorded = [r for r in _rows(record, "reproduction") if r["last_event"] is not None]
    assert recorded and all(
        float(str(r["event_movement_change_pct"])) > 20
        for r in recorded
        if r["last_event"] in ("oestrus", "insemination")
    )


def _twins(barn: Barn) -> list[tuple[str, str]]:
    record_of = dict(
        zip(
            barn.true_animal.column("true_id").to_pylist(),
            barn.true_animal.column("animal_id").to_pylist(),
            strict=True,
        )
    )
    return [
        (record_of[a["animal_id"]], record_of[a["twin_of"]])
        for a in barn.truth_animals.to_pylist()
        if a["twin_of"] and a["animal_id"] in record_of and a["twin_of"] in record_of
    ]


def test_lookalikes_finds_the_near_twin_first(record: Record, barn: Barn) -> None:
    twins = _twins(barn)
    assert twins
    for animal, twin in twins:
        rows = _rows(record, "lookalikes", animal=animal, k=3)
        assert [r["rank"] for r in rows] == [1, 2, 3]
        assert rows[0]["animal_id"] == twin
        assert float(str(rows[0]["similarity_cos"])) > float(str(rows[1]["similarity_cos"])) + 0.1
        assert animal not in {r["animal_id"] for r in rows}


def test_lookalikes_by_faiss_equal_the_exact_search(record: Record) -> None:
    pool = record.read_visible("pool", ["animal_id"]).column("animal_id").to_pylist()
    for animal in sorted(set(pool))[::4]:
        by_faiss = lookalike_animals(record, animal, 5, "faiss").to_pydict()
        exact = lookalike_animals(record, animal, 5, "exact").to_pydict()
        assert by_faiss["animal_id"] == exact["animal_id"]
        assert by_faiss["similarity_cos"] == exact["similarity_cos"]  # both scored by the pool
        # FAISS and numpy sum float32 products in different orders.
        assert by_faiss["closest_pair_cos"] == pytest.approx(exact["closest_pair_cos"], abs=2e-4)


def test_lookalikes_of_an_unknown_animal_is_a_clear_error(record: Record) -> None:
    with pytest.raises(UnknownAnimal, match="no animal 'P99999'"):
        run_query(record, "lookalikes", {"animal": "P99999"})


# --- the command ----------------------------------------------------------------------------


def test_list_shows_names_parameters_and_descriptions(barn: Barn) -> None:
    result = runner.invoke(app, ["query", str(barn.path), "--list"])
    assert result.exit_code == 0, result.output
    for name in QUERIES:
        assert name in result.output
    assert "days integer = 3 [1, 30]" in result.output
    assert "measure text = lying_share {lying_share, activity_index, gait_mean}" in result.output
    assert "Average daily gain per animal" in result.output


def test_the_command_writes_each_format(record: Record, barn: Barn, tmp_path: Path) -> None:
    args = ["query", str(barn.path), "growth", "--param", "days=14", "-p", "slow_percentile=30"]
    expected = run_query(record, "growth", {"days": "14", "slow_percentile": "30"})
    ids = expected.column("animal_id").to_pylist()

    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert all(animal in table.stdout for animal in ids)
    assert f"{len(ids)} animals" in table.stdout

    as_csv = runner.invoke(app, [*args, "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))  # stdout holds the rows only
    assert [r["animal_id"] for r in parsed] == ids
    assert f"{len(ids)} animals" in as_csv.stderr

    as_json = runner.invoke(app, [*args, "--format", "jsonl"])
    assert as_json.exit_code == 0, as_json.output
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["animal_id"] for r in lines] == ids
    assert lines[0]["first_day"] == str(expected.column("first_day")[0].as_py())

    out = tmp_path / "growth.parquet"
    as_parquet = runner.invoke(app, [*args, "--format", "parquet", "--out", str(out)])
    assert as_parquet.exit_code == 0, as_parquet.output
    written = pq.read_table(out)
    assert written.column("animal_id").to_pylist() == ids
    assert written.schema.metadata[META_QUERY] == b"growth"
    assert json.loads(written.schema.metadata[META_PARAMS])["slow_percentile"] == 30.0


def test_a_narrow_terminal_names_the_columns_left_out(barn: Barn) -> None:
    # TTY_COMPATIBLE=1: rich's switch to treat the runner's stream as a terminal (written
    # to anything else, the table keeps every column).
    narrow = {"COLUMNS": "80", "TTY_COMPATIBLE": "1"}
    result = runner.invoke(app, ["query", str(barn.path), "disease"], env=narrow)
    assert result.exit_code == 0, result.output
    assert "not shown at this width:" in result.output and "controls_changed" in result.output
    assert all(len(line) <= 80 for line in result.output.splitlines() if "│" not in line)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lameness", "-p", "days=abc"], "error: query lameness: days='abc' is not a whole"),
        (["lameness", "-p", "days"], "error: --param 'days': write NAME=VALUE"),
        (["lameness", "-p", "days=2", "-p", "days=3"], "error: --param days is given twice"),
        (["nosuch"], "error: no named query 'nosuch'"),
        ([], "error: give a query name, or --list"),
        (["growth", "--format", "parquet"], "error: --format parquet writes a file"),
        (["growth", "--out", "x.csv"], "error: --out needs --format csv, json, jsonl or parquet"),
    ],
)
def test_command_errors_are_one_line(barn: Barn, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["query", str(barn.path), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.output


def test_a_named_query_sees_every_write_after_it(barn: Barn, tmp_path: Path) -> None:
    """Named queries keep what they read in the process, under the version of every table
    of the record: asked again unchanged the answer is the same, and after any write (a
    diagnosis from the CLI here) it is the fresh one, never the kept one."""
    from herdrecord.query.views import MATERIALISED, record_stamp

    copy = tmp_path / "herd"
    shutil.copytree(barn.path, copy)
    record = open_record(str(copy), Settings(retention_enabled=False))
    first = run_query(record, "disease", {})
    assert run_query(record, "disease", {}).equals(first)
    diagnosed = set(first.column("animal_id").to_pylist())
    animal = next(a for a in barn.true_animal.column("animal_id").to_pylist() if a not in diagnosed)
    stamp = record_stamp(record)
    at = f"{CONFIG.start + timedelta(days=CONFIG.days - 2)}T12:00Z"
    added = runner.invoke(
        app,
        ["event", "add", str(copy), "--kind", "diagnosis", "--animal", animal, "--at", at,
         "--code", "TEST"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert record_stamp(record) != stamp
    after = run_query(record, "disease", {})
    MATERIALISED.clear()
    assert after.equals(run_query(record, "disease", {}))  # what a fresh process answers
    assert animal in after.column("animal_id").to_pylist()
    assert after.num_rows == first.num_rows + 1
