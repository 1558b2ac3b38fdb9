"""The SQL sandbox's bounds: an OS limit on its process, a byte cap on results, a bounded
number of queries at once in the service (then 429), and a fresh process for every query
even when the service keeps one warm."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import make_batch, service_settings
from herdrecord.api.keys import add_key
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.errors import SqlResultTooLarge
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.query.lockdown import read_rows, sandbox_connection
from herdrecord.query.sandbox import Sandbox
from herdrecord.server import create_app
from herdrecord.store.record import create_record, open_record

runner = CliRunner()
SETTINGS = Settings(lock_timeout_s=0.5)
# 100,000 rows of 4 KB: the 400 MB result of the finding.
BIG_RESULT = "SELECT i, repeat('x', 4000) AS filler FROM range(100000) t(i)"
SLOW = "SELECT count(*) FROM range(100000000) a, range(100000) b"


@pytest.fixture(scope="module")
def herd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a record of one ingested batch; the tests only read it."""
    path = tmp_path_factory.mktemp("limits") / "herd"
    record = create_record(str(path), SETTINGS)
    batch = make_batch()
    assert ingest(record, [parse_json(json.dumps(batch).encode(), "b")]).count("accepted") == 1
    return path


@pytest.fixture
def sandbox(herd: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = sandbox_connection(herd, SETTINGS)
    yield con
    con.close()


def test_a_two_gigabyte_string_fails_clearly_and_the_process_stays_small(herd: Path) -> None:
    # A process of its own, so that its children's peak RSS is the sandbox's alone.
    script = textwrap.dedent(
        f"""
        import json, resource
        from herdrecord.config import Settings
        from herdrecord.errors import SqlError
        from herdrecord.query.sandbox import run_sql
        try:
            run_sql({str(herd)!r}, "SELECT length(repeat('x', 2000000000)) AS n", Settings())
            answer = "no error"
        except SqlError as exc:
            answer = str(exc)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(json.dumps({{"answer": answer, "peak_rss_bytes": peak}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["answer"] == (
        "the query needed more memory than the sandbox's process may map (its libraries + 1GB "
        "HERDRECORD_SQL_MEMORY_LIMIT + 1GB HERDRECORD_SQL_PROCESS_HEADROOM) — filter or "
        "aggregate more, or raise the limits"
    )
    # Unbounded, the string alone is 2 GB resident (4.2 GB with its copies).
    assert report["peak_rss_bytes"] < 1.2 * 10**9, report


def test_a_result_past_the_byte_cap_is_refused_naming_it(
    sandbox: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(SqlResultTooLarge) as caught:
        read_rows(sandbox, BIG_RESULT, SETTINGS)
    assert str(caught.value) == (
        "the result passed 67,108,864 bytes (HERDRECORD_SQL_MAX_RESULT_BYTES) and was not sent "
        "— select fewer columns or rows, aggregate, or raise the setting"
    )
    # The row cap still cuts a result that fits the byte cap.
    rows = read_rows(sandbox, "SELECT i FROM range(200000) t(i)", SETTINGS)
    assert rows.table.num_rows == SETTINGS.sql_max_rows and rows.truncated
    exact = read_rows(sandbox, "SELECT 'x' AS a FROM range(10)", Settings(sql_max_result_bytes=60))
    assert exact.table.num_rows == 10


def test_the_command_refuses_a_big_result_in_one_line(herd: Path) -> None:
    result = runner.invoke(
        cli_app,
        ["sql", str(herd), "SELECT repeat('x', 1000) AS s FROM range(10000)", "--format", "csv"],
        env={"HERDRECORD_SQL_MAX_RESULT_BYTES": "1000000"},
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: the result passed 1,000,000 bytes (HERDRECORD_SQL_MAX_RESULT_BYTES) and was not "
        "sent — select fewer columns or rows, aggregate, or raise the setting"
    )


def test_a_query_sees_nothing_a_query_before_it_left(herd: Path) -> None:
    seeded = duckdb.connect()
    seeded.sql("SELECT setseed(0.42)").fetchall()
    ((after_seed,),) = seeded.sql("SELECT random()").fetchall()
    with Sandbox(SETTINGS, warm=1) as sandbox:
        sandbox.run(herd, "SELECT setseed(0.42)")
        following = sandbox.run(herd, "SELECT random() AS r").table.column("r").to_pylist()
    assert following != [after_seed]


@pytest.fixture(scope="module")
def service(herd: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A service that runs one SQL query at once and queues the next half a second."""
    settings = service_settings(
        herd, sql_max_concurrent=1, sql_queue_s=0.5, sql_timeout_s=2.0, sql_max_result_bytes=10**6
    )
    key = add_key(open_record(str(herd), SETTINGS), "analyst-1", "analyst", "test")[1]
    with TestClient(create_app(settings)) as client:
        yield client, {"Authorization": f"Bearer {key}"}


def test_a_query_past_the_concurrency_limit_gets_429_with_retry_after(
    service: tuple[TestClient, dict[str, str]],
) -> None:
    client, analyst = service
    first: dict[str, object] = {}

    def slow() -> None:
        answer = client.post("/v1/sql", json={"sql": SLOW}, headers=analyst)
        first.update(status=answer.status_code, body=answer.json())

    thread = threading.Thread(target=slow)
    thread.start()
    sandbox: Sandbox = client.app.state.sandbox  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while sandbox.running == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    refused = client.post("/v1/sql", json={"sql": "SELECT 1 AS one"}, headers=analyst)
    thread.join(timeout=120)
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "busy"
    assert error["message"].startswith("1 SQL query is running, the most at once")
    assert first["status"] == 422 and "ran past 2 s" in str(first["body"])
    # The slot is free again once the slow query is stopped.
    again = client.post("/v1/sql", json={"sql": "SELECT 1 AS one"}, headers=analyst)
    assert again.status_code == 200 and again.json()["rows"] == [[1]]


def test_the_service_refuses_a_big_result_with_422(
    service: tuple[TestClient, dict[str, str]],
) -> None:
    client, analyst = service
    answer = client.post("/v1/sql", json={"sql": BIG_RESULT}, headers=analyst)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "result_too_large"
    assert "passed 1,000,000 bytes (HERDRECORD_SQL_MAX_RESULT_BYTES)" in error["message"]
    assert len(answer.content) < 2000
