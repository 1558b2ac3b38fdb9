"""Free read-only SQL over the record's views, run in a locked-down DuckDB in its own process.

`run_sql` checks that the text is one SELECT (or an EXPLAIN of one), then starts a child
process (`python -m herdrecord.query.sandbox`) that opens the record, builds the views of
`query.connect` and locks its DuckDB connection down: no files, URLs or extensions, memory and
threads capped, the configuration locked. The parent gives the query `sql_timeout_s` and kills
the child when it runs over, so a runaway query never harms the caller. Rows come back as an
Arrow IPC file in a temporary directory, at most `sql_max_rows` of them: a longer result is cut
there and marked `truncated`, so an analyst's first look at a big view is quick and bounded.

The record is never written: DuckDB reads the Lance tables only through scans of registered
datasets, has no route to write them, and with external access off cannot touch any file.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa

from herdrecord.config import Settings
from herdrecord.errors import HerdrecordError, SqlError, SqlFailed, SqlRejected, SqlTimedOut
from herdrecord.store.record import open_record

# Opening the record in the child (interpreter start, imports, views) is not the query's time;
# it gets its own, generous bound so that a stuck start cannot hang the caller either.
STARTUP_LIMIT_S = 120.0
_READ_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class SqlResult:
    """The rows of one query, whether they were cut at `sql_max_rows`, and its seconds."""

    table: pa.Table
    truncated: bool
    seconds: float


@dataclass(frozen=True)
class Rows:
    """Rows read from a locked-down connection, at most the limit, and whether more were left."""

    table: pa.Table
    truncated: bool


def run_sql(
    record_path: str | Path, sql: str, settings: Settings, fleet: bool = False
) -> SqlResult:
    """Run one read-only SELECT over the record's views in a sandboxed child process; with
    `fleet`, over the views of every farm's record under the root `record_path`."""
    from herdrecord.query.fleet import fleet_records

    check_statement(sql)
    # A missing or too-new record fails here, clearly.
    if fleet:
        fleet_records(str(record_path), settings)
    else:
        open_record(str(record_path), settings)
    with tempfile.TemporaryDirectory(prefix="herdrecord-sql-") as tmp:
        work = Path(tmp)
        request = work / "request.json"
        request.write_text(
            json.dumps(
                {
                    "record": str(record_path),
                    "fleet": fleet,
                    "sql": sql,
                    "settings": settings.model_dump(mode="json"),
                    "result": str(work / "result.arrow"),
                }
            )
        )
        with (work / "stderr.txt").open("wb") as stderr:
            # -P: the current directory is not put on sys.path, so no file there can stand in
            # for a module the child imports.
            child = subprocess.Popen(
                [sys.executable, "-P", "-m", "herdrecord.query.sandbox", str(request)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
            messages, pump = _messages(child.stdout)
            try:
                return _follow(child, messages, work, settings.sql_timeout_s)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait()
                pump.join(timeout=10.0)  # it reads to the end of the dead child's output
                if child.stdout is not None:
                    child.stdout.close()


def _follow(
    child: subprocess.Popen[str],
    messages: queue.Queue[str | None],
    work: Path,
    timeout_s: float,
) -> SqlResult:
    """Wait for the child's messages; kill it when it runs over; return its rows."""
    ready = _next_message(messages, STARTUP_LIMIT_S, child, work)
    if ready is None:
        raise SqlFailed(f"the SQL sandbox did not start within {STARTUP_LIMIT_S:g} s")
    _raise_if_error(ready)
    started = time.monotonic()
    done = _next_message(messages, timeout_s, child, work)
    if done is None:
        child.kill()
        raise SqlTimedOut(timeout_s)
    seconds = time.monotonic() - started
    _raise_if_error(done)
    with pa.OSFile(str(work / "result.arrow")) as source:
        table = pa.ipc.open_file(source).read_all()
    return SqlResult(table=table, truncated=bool(done["truncated"]), seconds=seconds)


def _messages(stream: IO[str] | None) -> tuple[queue.Queue[str | None], threading.Thread]:
    """Return a queue fed with the child's protocol lines, None at their end, and its thread."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        if stream is not None:
            for line in stream:
                lines.put(line)
        lines.put(None)

    thread = threading.Thread(target=pump, name="herdrecord-sql-messages", daemon=True)
    thread.start()
    return lines, thread


def _next_message(
    messages: queue.Queue[str | None], limit_s: float, child: subprocess.Popen[str], work: Path
) -> dict[str, Any] | None:
    """Return the child's next message; None when `limit_s` passed without one."""
    try:
        line = messages.get(timeout=limit_s)
    except queue.Empty:
        return None
    if line is None:
        code = child.wait()
        raise SqlFailed(
            f"the SQL sandbox stopped without an answer (exit code {code}); it may have run out "
            f"of memory — query less at once{_last_line(work / 'stderr.txt')}"
        )
    message: dict[str, Any] = json.loads(line)
    return message


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return f" ({lines[-1].strip()})" if lines else ""


def _raise_if_error(message: dict[str, Any]) -> None:
    if message["event"] != "error":
        return
    kinds: dict[str, type[HerdrecordError]] = {
        "rejected": SqlRejected,
        "failed": SqlFailed,
        "record": HerdrecordError,
    }
    raise kinds.get(message["kind"], SqlFailed)(message["message"])


# --- the statement check ------------------------------------------------------------------

_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_EXPLAIN = re.compile(r"EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?(.*)$", re.DOTALL | re.I)


def check_statement(sql: str) -> None:
    """Accept exactly one SELECT (or EXPLAIN of one); raise SqlRejected or SqlFailed otherwise."""
    statements = _parse(sql)
    if not statements:
        raise SqlRejected('no SQL statement given — pass one SELECT, e.g. "SELECT * FROM animals"')
    if len(statements) > 1:
        labels = ", ".join(_label(s) for s in statements)
        raise SqlRejected(
            f"only one SELECT statement is allowed; got {len(statements)} statements ({labels})"
        )
    statement = statements[0]
    if statement.type == duckdb.StatementType.SELECT:
        return
    if statement.type == duckdb.StatementType.EXPLAIN:
        explained = _EXPLAIN.match(_strip_comments(statement.query))
        inner = _parse(explained.group(1)) if explained else []
        if len(inner) == 1 and inner[0].type == duckdb.StatementType.SELECT:
            return
        what = _label(inner[0]) if len(inner) == 1 else "something else"
        raise SqlRejected(f"only one SELECT statement is allowed; got EXPLAIN of {what}")
    raise SqlRejected(f"only one SELECT statement is allowed; got {_label(statement)}")


def _parse(sql: str) -> list[Any]:
    try:
        return list(duckdb.extract_statements(sql))
    except duckdb.Error as exc:
        raise SqlFailed(one_line(str(exc))) from None


def _strip_comments(text: str) -> str:
    found = _COMMENTS.match(text)
    return text[found.end() :] if found else text


def _label(statement: Any) -> str:
    """Return how a person would name the statement: its first keyword (INSTALL, USE,
    CHECKPOINT), or its type where the keyword says nothing (WITH ... INSERT)."""
    word = re.match(r"[A-Za-z_]*", _strip_comments(statement.query))
    keyword = word.group(0).upper() if word else ""
    if keyword in ("", "WITH", "FROM", "VALUES"):
        return str(statement.type.name).replace("_", " ")
    return keyword


def one_line(message: str) -> str:
    """Return DuckDB's error message as one line: its first line and its suggestions."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "the query failed"
    hints = [line for line in lines[1:] if line.startswith(("Candidate bindings", "Did you mean"))]
    return "; ".join([lines[0], *hints])


# --- the child: a locked-down connection --------------------------------------------------


def sandbox_connection(
    record_path: str | Path, settings: Settings, fleet: bool = False
) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection with the record's views (or a fleet's: every farm's rows
    with farm_id) that can read nothing else, load nothing, change no setting and use at
    most the configured memory and threads."""
    from herdrecord.query.fleet import fleet_connection, fleet_records
    from herdrecord.query.views import connect

    # The Lance tables are registered as Python dataset objects, not opened by path, so their
    # scans keep working once external access is off (checked: registering works before and
    # after). The views are built first anyway, while nothing is locked.
    if fleet:
        con = fleet_connection(fleet_records(str(record_path), settings))
    else:
        con = connect(open_record(str(record_path), settings, recover=False))
    lock_down(con, settings)
    return con


# Order matters: temp_directory cannot be changed once external access is off (DuckDB answers
# "Permission Error: Modifying the temp_directory has been disabled by configuration"), and
# lock_configuration must come last or it would freeze the settings before they are made.
LOCKDOWN = (
    # No Python replacement scans: `FROM name` may not read a Python object of that name.
    "SET python_enable_replacements = false",
    # No spilling to disk: the memory limit is a hard limit, and no file is ever written.
    "SET temp_directory = ''",
    "SET max_temp_directory_size = '0B'",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET allow_persistent_secrets = false",
    "SET memory_limit = '{memory_limit}'",
    "SET threads = {threads}",
    # No files, URLs, ATTACH of files, COPY, INSTALL or LOAD from here on.
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


def lock_down(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Apply the sandbox's settings to the connection, then lock its configuration."""
    for statement in LOCKDOWN:
        con.execute(
            statement.format(memory_limit=settings.sql_memory_limit, threads=settings.sql_threads)
        )


def read_rows(con: duckdb.DuckDBPyConnection, sql: str, settings: Settings) -> Rows:
    """Run a query on a locked-down connection; return at most `sql_max_rows` of its rows."""
    max_rows = settings.sql_max_rows
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement without rows (only when the check was skipped)
            return Rows(pa.table({}), truncated=False)
        reader = relation.to_arrow_reader(min(max_rows + 1, _READ_BATCH_ROWS))
        batches: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows > max_rows:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.Error as exc:
        raise translate(exc, settings) from None
    return Rows(table.slice(0, max_rows), truncated=table.num_rows > max_rows)


def translate(exc: duckdb.Error, settings: Settings) -> SqlError:
    """Return DuckDB's error as the sandbox's one-line error."""
    text = one_line(str(exc))
    if _needs_extension(exc, text):
        return SqlRejected(f"herdrecord sql loads no extensions: {text}")
    if isinstance(exc, duckdb.PermissionException):
        from herdrecord.query.views import VIEWS

        return SqlRejected(
            f"herdrecord sql reads only the record's views ({', '.join(VIEWS)}), not files or "
            f"URLs: {text.removeprefix('Permission Error: ')}"
        )
    if "configuration has been locked" in text:
        return SqlRejected(f"settings cannot be changed in herdrecord sql ({text})")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return SqlFailed(
            f"the query needed more than its memory limit ({settings.sql_memory_limit}, "
            "HERDRECORD_SQL_MEMORY_LIMIT) — filter or aggregate more, or raise the limit"
        )
    return SqlFailed(text)


def _needs_extension(exc: duckdb.Error, text: str) -> bool:
    """Return whether the query failed for want of an extension (none is ever loaded)."""
    if isinstance(exc, duckdb.CatalogException):
        # DuckDB: 'Table Function with name "read_xlsx" is not in the catalog, but it exists
        # in the excel extension.'
        return "but it exists in the" in text
    return isinstance(exc, duckdb.PermissionException) and (
        "extensions is disabled" in text or "/extensions/" in text
    )


def serve(request_path: str) -> int:
    """Run one request in this (child) process: open, lock down, query, write the rows."""
    # The protocol owns the real stdout; whatever a library prints goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def send(**message: Any) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    request = json.loads(Path(request_path).read_text())
    settings = Settings(**request["settings"])
    try:
        con = sandbox_connection(request["record"], settings, bool(request.get("fleet")))
        send(event="ready")
        check_statement(request["sql"])
        rows = read_rows(con, request["sql"], settings)
        with (
            pa.OSFile(request["result"], "wb") as sink,
            pa.ipc.new_file(sink, rows.table.schema) as writer,
        ):
            writer.write_table(rows.table)
        send(event="done", rows=rows.table.num_rows, truncated=rows.truncated)
    except SqlError as exc:
        kind = "rejected" if isinstance(exc, SqlRejected) else "failed"
        send(event="error", kind=kind, message=str(exc))
    except HerdrecordError as exc:
        send(event="error", kind="record", message=str(exc))
    except duckdb.Error as exc:
        send(event="error", kind="failed", message=str(translate(exc, settings)))
    except Exception as exc:
        traceback.print_exc()
        send(event="error", kind="failed", message=one_line(f"{type(exc).__name__}: {exc}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1]))
