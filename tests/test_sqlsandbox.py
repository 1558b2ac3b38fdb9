"""Free SQL in a sandbox: the right rows, one SELECT only, no files or URLs, limits, a record
left as it was, and the `sql` command's formats."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pydantic
import pytest
from typer.testing import CliRunner

from conftest import make_batch
from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.errors import SqlFailed, SqlRejected, SqlTimedOut
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.run import link_pending
from herdrecord.linking.state import LinkingConfig
from herdrecord.query.lockdown import read_rows, sandbox_connection
from herdrecord.query.sandbox import run_sql
from herdrecord.query.statements import check_statement
from herdrecord.store.record import Record, create_record, open_record

runner = CliRunner()
SETTINGS = Settings(lock_timeout_s=0.5)
DICTIONARY = json.loads((Path(__file__).parents[1] / "schemas/data-dictionary.json").read_text())


@pytest.fixture(scope="module")
def herd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a record of three ingested, linked batches (nine tracklets, never more than three
    at once: three animals by the head count); the tests only read it."""
    path = tmp_path_factory.mktemp("sql") / "herd"
    record = create_record(str(path), SETTINGS)
    batches = [make_batch(f"dev-01/2026-11-21T0{i}", seed=i, track_offset=10 * i) for i in range(3)]
    report = ingest(record, [parse_json(json.dumps(b).encode(), b["batch_id"]) for b in batches])
    assert report.count("accepted") == 3
    link_pending(record, LinkingConfig(min_enrol_share=0.01))
    return path


@pytest.fixture(scope="module")
def sandbox(herd: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Return a locked-down connection in this process, as the child process makes it (the
    tests only read through it, or try what it must refuse)."""
    con = sandbox_connection(herd, SETTINGS)
    yield con
    con.close()


def versions(record: Record) -> dict[str, int]:
    return {info.name: info.version for info in record.table_info()}


def files_under(path: Path) -> set[tuple[str, int]]:
    return {(str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*") if p.is_file()}


# --- results ------------------------------------------------------------------------------


def test_a_select_over_the_views_returns_the_record_rows(herd: Path) -> None:
    record = open_record(str(herd), SETTINGS)
    links = record.read_visible("links", ["track_id", "animal_id"]).to_pylist()
    animal_of = {row["track_id"]: row["animal_id"] for row in links}
    observations = record.read_visible("observations", ["track_id"]).column("track_id")
    expected = sorted(Counter(animal_of[t] for t in observations.to_pylist()).items())

    result = run_sql(
        herd,
        "SELECT a.animal_id, count(*) AS observations FROM animals a "
        "JOIN observations o USING (animal_id) GROUP BY ALL ORDER BY a.animal_id",
        SETTINGS,
    )
    assert [tuple(row.values()) for row in result.table.to_pylist()] == expected
    assert len(expected) == 3 and result.truncated is False and result.seconds > 0


def test_rows_past_the_limit_are_cut_and_marked(sandbox: duckdb.DuckDBPyConnection) -> None:
    settings = Settings(sql_max_rows=36)
    exact = read_rows(sandbox, "SELECT * FROM observations", settings)
    assert exact.table.num_rows == 36 and not exact.truncated
    cut = read_rows(sandbox, "SELECT * FROM observations", Settings(sql_max_rows=35))
    assert cut.table.num_rows == 35 and cut.truncated


def test_explain_of_a_select_is_allowed(sandbox: duckdb.DuckDBPyConnection) -> None:
    check_statement("-- the plan\nEXPLAIN ANALYZE SELECT * FROM days")
    plan = read_rows(sandbox, "EXPLAIN SELECT * FROM days", SETTINGS).table
    assert plan.column_names == ["explain_key", "explain_value"]


# --- the catalog: the documented views and nothing else ----------------------------------


def catalog(rows: list[dict[str, object]]) -> dict[str, list[tuple[object, object]]]:
    found: dict[str, list[tuple[object, object]]] = {}
    for row in rows:
        found.setdefault(str(row["table_name"]), []).append((row["column_name"], row["data_type"]))
    return found


def test_the_sandbox_catalog_is_the_data_dictionary(herd: Path) -> None:
    columns = run_sql(
        herd,
        "SELECT table_catalog, table_schema, table_name, column_name, data_type "
        "FROM information_schema.columns ORDER BY table_name, ordinal_position",
        SETTINGS,
    ).table.to_pylist()
    assert {(r["table_catalog"], r["table_schema"]) for r in columns} == {("memory", "main")}
    assert catalog(columns) == {
        view: [(c["name"], c["type"]) for c in described] for view, described in DICTIONARY.items()
    }
    listed = run_sql(
        herd,
        "SELECT table_name AS name, table_type AS kind FROM information_schema.tables UNION ALL "
        "SELECT view_name, 'duckdb_views' FROM duckdb_views() WHERE NOT internal UNION ALL "
        "SELECT table_name, 'duckdb_tables' FROM duckdb_tables() ORDER BY ALL",
        SETTINGS,
    ).table.to_pylist()
    assert sorted((r["name"], r["kind"]) for r in listed) == sorted(
        [(view, "VIEW") for view in DICTIONARY] + [(view, "duckdb_views") for view in DICTIONARY]
    )


@pytest.mark.parametrize(
    "table", ["_api_keys", "_samples", "_keyframes", "_metadata", "_migrations", "_current"]
)
def test_the_tables_behind_the_views_cannot_be_named(
    sandbox: duckdb.DuckDBPyConnection, table: str
) -> None:
    with pytest.raises(SqlFailed, match=f"Table with name {table} does not exist"):
        read_rows(sandbox, f"SELECT * FROM {table}", SETTINGS)
    with pytest.raises(SqlFailed, match=f"Table with name {table} does not exist"):
        read_rows(sandbox, f"SELECT * FROM memory.main.{table}", SETTINGS)


def test_a_fleet_catalog_is_the_data_dictionary_too(tmp_path: Path) -> None:
    for number, farm in enumerate(["farm-a", "farm-b"]):
        record = create_record(str(tmp_path / farm), SETTINGS, farm_id=farm)
        batch = {**make_batch(f"dev-0{number}/2026-11-21T06"), "farm_id": farm}
        report = ingest(record, [parse_json(json.dumps(batch).encode(), batch["batch_id"])])
        assert report.count("accepted") == 1
    con = sandbox_connection(tmp_path, SETTINGS, fleet=True)
    names = con.sql(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() UNION ALL "
        "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    assert sorted(name for (name,) in names) == sorted(f"main.{view}" for view in DICTIONARY)
    assert con.sql("SELECT DISTINCT farm_id FROM tracklets ORDER BY 1").fetchall() == [
        ("farm-a",),
        ("farm-b",),
    ]
    with pytest.raises(duckdb.CatalogException, match="_api_keys does not exist"):
        con.sql("SELECT * FROM _api_keys")
    con.close()


# --- one SELECT only ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "got"),
    [
        ("INSERT INTO animals SELECT * FROM animals", "INSERT"),
        ("UPDATE animals SET pen_id = 'pen-9'", "UPDATE"),
        ("DELETE FROM animals", "DELETE"),
        ("CREATE TABLE t AS SELECT * FROM animals", "CREATE"),
        ("DROP VIEW animals", "DROP"),
        ("ATTACH 'other.duckdb' AS other", "ATTACH"),
        ("DETACH other", "DETACH"),
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("COPY animals TO 'animals.csv'", "COPY"),
        ("EXPORT DATABASE 'dump'", "EXPORT"),
        ("PRAGMA enable_external_access", "PRAGMA"),
        ("SET enable_external_access = true", "SET"),
        ("CALL pragma_version()", "CALL"),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "INSERT"),
        ("EXPLAIN ANALYZE DELETE FROM animals", "EXPLAIN of DELETE"),
    ],
)
def test_anything_but_one_select_is_refused(herd: Path, sql: str, got: str) -> None:
    with pytest.raises(SqlRejected) as caught:
        run_sql(herd, sql, SETTINGS)
    assert str(caught.value) == f"only one SELECT statement is allowed; got {got}"


def test_several_statements_or_none_are_refused(herd: Path) -> None:
    with pytest.raises(SqlRejected, match=r"got 2 statements \(SELECT, DROP\)"):
        run_sql(herd, "SELECT * FROM animals; DROP VIEW animals", SETTINGS)
    with pytest.raises(SqlRejected, match="no SQL statement given"):
        run_sql(herd, " ; -- nothing", SETTINGS)


def test_syntax_errors_are_one_line(herd: Path) -> None:
    with pytest.raises(SqlFailed) as caught:
        run_sql(herd, "SELEC * FROM animals", SETTINGS)
    assert str(caught.value) == 'Parser Error: syntax error at or near "SELEC"'


def test_unknown_columns_are_one_line_with_the_candidates(
    sandbox: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(SqlFailed) as caught:
        read_rows(sandbox, "SELECT weight FROM animals", SETTINGS)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith('Binder Error: Referenced column "weight" not found')
    assert "Candidate bindings" in message


# --- no files, URLs, extensions or settings -----------------------------------------------


@pytest.mark.parametrize(
    ("sql", "target"),
    [
        ("SELECT * FROM read_csv('/etc/passwd', sep = ':')", "/etc/passwd"),
        ("SELECT * FROM read_csv('{dir}/cows.csv')", "{dir}/cows.csv"),
        ("SELECT * FROM '{dir}/cows.csv'", "{dir}/cows.csv"),
        ("SELECT * FROM read_parquet('{dir}/cows.parquet')", "{dir}/cows.parquet"),
        ("SELECT * FROM '{dir}/cows.parquet'", "{dir}/cows.parquet"),
        ("SELECT * FROM read_json('{dir}/cows.json')", "{dir}/cows.json"),
        ("SELECT * FROM read_text('/etc/hostname')", "/etc/hostname"),
        ("SELECT * FROM read_blob('{dir}/cows.csv')", "{dir}/cows.csv"),
        ("SELECT * FROM glob('{dir}/*')", "{dir}/*"),
        ("SELECT * FROM sniff_csv('{dir}/cows.csv')", "{dir}/cows.csv"),
        ("SELECT * FROM 'https://example.org/cows.csv'", "https://example.org/cows.csv"),
        ("SELECT * FROM read_parquet('http://example.org/c.parquet')", "http://example.org/c"),
        ("SELECT * FROM read_csv('s3://herd/cows.csv')", "s3://herd/cows.csv"),
        ("SELECT * FROM read_blob('{herd}/animals.lance/_versions/*')", "animals.lance"),
    ],
)
def test_files_and_urls_cannot_be_read(
    sandbox: duckdb.DuckDBPyConnection, herd: Path, tmp_path: Path, sql: str, target: str
) -> None:
    (tmp_path / "cows.csv").write_text("animal_id,kg\nP00001,101\n")
    (tmp_path / "cows.json").write_text('[{"animal_id": "P00001"}]')
    duckdb.connect().sql(f"COPY (SELECT 1 AS a) TO '{tmp_path}/cows.parquet'")
    values = {"dir": str(tmp_path), "herd": str(herd)}
    with pytest.raises(SqlRejected) as caught:
        read_rows(sandbox, sql.format(**values), SETTINGS)
    message = str(caught.value)
    assert message.startswith("herdrecord sql reads only the record's views (animals,")
    assert "not files or URLs: Cannot access file" in message
    assert target.format(**values) in message


@pytest.mark.parametrize(
    "sql", ["SELECT * FROM read_xlsx('cows.xlsx')", "SELECT * FROM st_read('pens.shp')"]
)
def test_extensions_are_never_loaded(sandbox: duckdb.DuckDBPyConnection, sql: str) -> None:
    with pytest.raises(SqlRejected, match="herdrecord sql loads no extensions: Catalog Error"):
        read_rows(sandbox, sql, SETTINGS)


def test_a_file_read_is_refused_through_the_child_process(herd: Path) -> None:
    with pytest.raises(SqlRejected, match='not files or URLs: Cannot access file "/etc/passwd"'):
        run_sql(herd, "SELECT * FROM read_csv('/etc/passwd')", SETTINGS)


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM animals) TO '{dir}/out.csv'",
        "EXPORT DATABASE '{dir}/dump'",
        "ATTACH '{dir}/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SET memory_limit = '100GB'",
        "RESET threads",
        "SET temp_directory = '{dir}'",
    ],
)
def test_the_lockdown_holds_without_the_statement_check(
    sandbox: duckdb.DuckDBPyConnection, tmp_path: Path, sql: str
) -> None:
    with pytest.raises(duckdb.Error, match=r"disabled|locked"):
        sandbox.execute(sql.format(dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_the_lockdown_settings_are_in_force(sandbox: duckdb.DuckDBPyConnection) -> None:
    settings = dict(
        sandbox.sql(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
            "'lock_configuration', 'autoinstall_known_extensions', 'autoload_known_extensions', "
            "'allow_community_extensions', 'python_enable_replacements', 'temp_directory', "
            "'threads')"
        ).fetchall()
    )
    assert settings == {
        "enable_external_access": "false",
        "lock_configuration": "true",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "allow_community_extensions": "false",
        "python_enable_replacements": "false",
        "temp_directory": "",
        "threads": str(SETTINGS.sql_threads),
    }


def test_python_objects_cannot_be_scanned_by_name(sandbox: duckdb.DuckDBPyConnection) -> None:
    secrets = pa.table({"token": ["hush"]})  # what DuckDB's replacement scan would find
    assert duckdb.connect().sql("SELECT * FROM secrets").fetchall() == [("hush",)]
    with pytest.raises(duckdb.Error, match="Table with name secrets does not exist"):
        sandbox.sql("SELECT * FROM secrets").fetchall()
    assert secrets.num_rows == 1


def test_the_record_is_unchanged_by_forbidden_statements(herd: Path, tmp_path: Path) -> None:
    record = open_record(str(herd), SETTINGS)
    before, files_before = versions(record), files_under(herd)
    forbidden = [
        "DROP VIEW animals",
        "DELETE FROM observations",
        "INSERT INTO animals SELECT * FROM animals",
        "UPDATE tracklets SET pen_id = 'x'",
        "CREATE TABLE animals AS SELECT 1",
        f"COPY (SELECT 1) TO '{herd}/animals.lance/data/x.lance'",
        f"ATTACH '{herd}/metadata.duckdb' AS meta",
        f"EXPORT DATABASE '{herd}'",
    ]
    for sql in forbidden:
        with pytest.raises(SqlRejected):
            run_sql(herd, sql, SETTINGS)
    con = sandbox_connection(herd, SETTINGS)
    for sql in forbidden:  # past the check, straight to the locked-down connection
        with contextlib.suppress(duckdb.Error):
            con.execute(sql)
    con.close()
    assert versions(open_record(str(herd), SETTINGS)) == before
    assert files_under(herd) == files_before


# --- limits -------------------------------------------------------------------------------


def test_a_runaway_query_is_stopped_at_the_time_limit(herd: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SqlTimedOut) as caught:
        run_sql(
            herd,
            "SELECT count(*) FROM range(100000000) a, range(100000) b",
            Settings(sql_timeout_s=1.5),
        )
    assert str(caught.value).startswith("query ran past 1.5 s and was stopped")
    assert time.monotonic() - started < 1.5 + 30  # the child's start is not the query's time


def test_a_query_past_the_memory_limit_fails_clearly(herd: Path) -> None:
    settings = Settings(sql_memory_limit="64MB")
    con = sandbox_connection(herd, settings)
    with pytest.raises(SqlFailed, match=r"more than its memory limit \(64MB"):
        read_rows(con, "SELECT list(i) FROM range(20000000) t(i)", settings)
    con.close()


@pytest.mark.parametrize("size", ["1", "-1GB", "1 gigaflop", "10MB", "", "80%"])
def test_memory_limits_are_checked(size: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="sql_memory_limit"):
        Settings(sql_memory_limit=size)
    assert Settings(sql_memory_limit=" 2 GiB").sql_memory_limit == "2 GiB"


# --- the command --------------------------------------------------------------------------

QUERY = "SELECT animal_id, pen_id, provisional FROM animals ORDER BY animal_id"


def test_the_command_shows_a_table_and_says_when_rows_were_cut(herd: Path) -> None:
    result = runner.invoke(app, ["sql", str(herd), QUERY], env={"HERDRECORD_SQL_MAX_ROWS": "2"})
    assert result.exit_code == 0, result.output
    assert "P00002" in result.stdout and "P00003" not in result.stdout
    assert "2 rows in" in result.output
    assert "the result was cut at 2 rows (HERDRECORD_SQL_MAX_ROWS)" in result.output


def test_the_command_writes_csv_to_stdout(herd: Path) -> None:
    result = runner.invoke(app, ["sql", str(herd), QUERY, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 3
    assert rows[0] == {"animal_id": "P00001", "pen_id": "pen-1", "provisional": "true"}
    assert "3 rows in" in result.stderr


def test_the_command_writes_json_lines_to_a_file(herd: Path, tmp_path: Path) -> None:
    out = tmp_path / "animals.jsonl"
    sql = "SELECT animal_id, created_at FROM animals ORDER BY animal_id"
    result = runner.invoke(app, ["sql", str(herd), sql, "--format", "jsonl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and rows[0]["animal_id"] == "P00001"
    assert rows[0]["created_at"].startswith("20")  # ISO time


def test_the_command_writes_parquet_only_to_a_file(herd: Path, tmp_path: Path) -> None:
    out = tmp_path / "animals.parquet"
    result = runner.invoke(app, ["sql", str(herd), QUERY, "--format", "parquet"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --format parquet writes a file: give it with --out FILE"
    result = runner.invoke(app, ["sql", str(herd), QUERY, "--format", "parquet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("animal_id").to_pylist()[:2] == ["P00001", "P00002"]


def test_the_command_refuses_in_one_line(herd: Path) -> None:
    result = runner.invoke(app, ["sql", str(herd), "DROP VIEW animals"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: only one SELECT statement is allowed; got DROP"
