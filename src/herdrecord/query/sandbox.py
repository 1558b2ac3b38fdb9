"""Free read-only SQL over the record's views, run in a locked-down DuckDB in its own process.

`Sandbox.run` checks that the text is one SELECT (or an EXPLAIN of one), then hands it to a
child process (`herdrecord.query.sandbox_child`) that caps its own address space, opens the
record, builds the views of `query.connect` (they are all its catalog holds) and locks its
DuckDB connection down: no files, URLs or extensions, memory and threads capped, the
configuration locked. Each process runs exactly one query and exits; the service keeps
`sql_warm_processes` started ahead, their libraries already loaded, so a query does not wait
for Python to start, and runs at most `sql_max_concurrent` at once (a query waits
`sql_queue_s` for a slot, then is refused with 429). The parent gives the query
`sql_timeout_s` and kills the child when it runs over, so a runaway query never harms the
caller. Rows come back as an Arrow IPC file in a temporary directory, at most `sql_max_rows`
of them (a longer result is cut there and marked `truncated`) and at most
`sql_max_result_bytes` (a bigger one fails).

The record is never written: DuckDB reads the Lance tables only through scans of datasets the
views hold, has no route to write them, and with external access off cannot touch any file.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pyarrow as pa

from herdrecord.config import Settings
from herdrecord.errors import (
    HerdrecordError,
    SqlBusy,
    SqlError,
    SqlFailed,
    SqlRejected,
    SqlResultTooLarge,
    SqlTimedOut,
)
from herdrecord.query.statements import check_statement
from herdrecord.store.record import open_record

# Opening the record in the child (interpreter start, imports, views) is not the query's time;
# it gets its own, generous bound so that a stuck start cannot hang the caller either.
STARTUP_LIMIT_S = 120.0


@dataclass(frozen=True)
class SqlResult:
    """The rows of one query, whether they were cut at `sql_max_rows`, and its seconds."""

    table: pa.Table
    truncated: bool
    seconds: float


def run_sql(
    record_path: str | Path, sql: str, settings: Settings, fleet: bool = False
) -> SqlResult:
    """Run one read-only SELECT over the record's views in a sandboxed child process; with
    `fleet`, over the views of every farm's record under the root `record_path`."""
    with Sandbox(settings) as sandbox:
        return sandbox.run(record_path, sql, fleet)


class Sandbox:
    """Runs free SQL in sandboxed child processes, a fresh one per query: at most
    `sql_max_concurrent` at once, with `warm` processes started ahead of their queries (from
    the first query on: a service that is never asked starts none)."""

    def __init__(self, settings: Settings, warm: int = 0) -> None:
        self.settings = settings
        self.warm = warm
        self._slots = threading.BoundedSemaphore(settings.sql_max_concurrent)
        self._lock = threading.Lock()
        self._spares: list[_Process] = []
        self._running = 0
        self._closed = False

    @property
    def running(self) -> int:
        """Return how many queries run now."""
        return self._running

    def run(self, record_path: str | Path, sql: str, fleet: bool = False) -> SqlResult:
        """Run one read-only SELECT over the record's views (a fleet's, with `fleet`) in a
        process of its own; SqlBusy when no slot frees within `sql_queue_s`."""
        from herdrecord.query.fleet import fleet_records

        check_statement(sql)
        # A missing or too-new record fails here, clearly.
        if fleet:
            fleet_records(str(record_path), self.settings)
        else:
            open_record(str(record_path), self.settings)
        if not self._slots.acquire(timeout=self.settings.sql_queue_s):
            raise SqlBusy(self._running, self.settings.sql_queue_s)
        try:
            with self._lock:
                self._running += 1
            process = self._take()
            try:
                return process.ask(
                    {
                        "record": str(record_path),
                        "fleet": fleet,
                        "sql": sql,
                        "settings": self.settings.model_dump(mode="json"),
                    },
                    self.settings,
                )
            finally:
                process.discard()
                # Its replacement starts now, not while the query ran: loading the libraries
                # takes a core for seconds, which the query needed more.
                with self._lock:
                    self._top_up()
        finally:
            with self._lock:
                self._running -= 1
            self._slots.release()

    def close(self) -> None:
        """Stop the processes started ahead; a query running now still ends as it would."""
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
        for process in spares:
            process.discard()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _take(self) -> _Process:
        """Return a process for one query: a warm one when one is alive, else a new one."""
        with self._lock:
            process = None
            while self._spares and process is None:
                spare = self._spares.pop(0)
                if spare.alive():
                    process = spare
                else:
                    spare.discard()
        return process if process is not None else _Process()

    def _top_up(self) -> None:
        if not self._closed:
            self._spares += [_Process() for _ in range(self.warm - len(self._spares))]


class _Process:
    """One sandbox child: started (it loads its libraries on its own), given one request,
    followed to its answer, then discarded with its temporary directory."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="herdrecord-sql-"))
        self._stderr = (self.work / "stderr.txt").open("wb")
        # -P: the current directory is not put on sys.path, so no file there can stand in for
        # a module the child imports.
        self.child = subprocess.Popen(
            [sys.executable, "-P", "-m", "herdrecord.query.sandbox_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=_child_environment(),
        )
        self.messages, self._pump = _messages(self.child.stdout)

    def alive(self) -> bool:
        """Return whether the process still waits for its request."""
        return self.child.poll() is None

    def ask(self, request: dict[str, Any], settings: Settings) -> SqlResult:
        """Send the request; return the rows the process wrote."""
        result = self.work / "result.arrow"
        try:
            if self.child.stdin is not None:
                self.child.stdin.write(json.dumps({**request, "result": str(result)}) + "\n")
                self.child.stdin.close()
        except BrokenPipeError:
            pass  # it died waiting: following it reports how
        return self._follow(result, settings)

    def discard(self) -> None:
        """Stop the process if it still runs; remove what it left."""
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        self._pump.join(timeout=10.0)  # it reads to the end of the dead child's output
        for stream in (self.child.stdin, self.child.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self._stderr.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def _follow(self, result: Path, settings: Settings) -> SqlResult:
        """Wait for the child's messages; kill it when it runs over; return its rows."""
        ready = self._next_message(STARTUP_LIMIT_S)
        if ready is None:
            raise SqlFailed(f"the SQL sandbox did not start within {STARTUP_LIMIT_S:g} s")
        _raise_if_error(ready, settings)
        started = time.monotonic()
        done = self._next_message(settings.sql_timeout_s)
        if done is None:
            self.child.kill()
            raise SqlTimedOut(settings.sql_timeout_s)
        seconds = time.monotonic() - started
        _raise_if_error(done, settings)
        with pa.OSFile(str(result)) as source:
            table = pa.ipc.open_file(source).read_all()
        return SqlResult(table=table, truncated=bool(done["truncated"]), seconds=seconds)

    def _next_message(self, limit_s: float) -> dict[str, Any] | None:
        """Return the child's next message; None when `limit_s` passed without one."""
        try:
            line = self.messages.get(timeout=limit_s)
        except queue.Empty:
            return None
        if line is None:
            code = self.child.wait()
            raise SqlFailed(
                f"the SQL sandbox stopped without an answer (exit code {code}); it may have run "
                "out of memory (HERDRECORD_SQL_MEMORY_LIMIT, HERDRECORD_SQL_PROCESS_HEADROOM) — "
                f"query less at once{_last_line(self.work / 'stderr.txt')}"
            )
        message: dict[str, Any] = json.loads(line)
        return message


def _child_environment() -> dict[str, str]:
    """Return the child's environment: the parent's, with few malloc arenas unless set."""
    # glibc gives each thread that allocates an arena of its own, up to 8 per core, each
    # reserving 64 MB of address space; two keep the child's mappings (and so the room the
    # address-space cap must leave them) small, whatever the core count.
    return {"MALLOC_ARENA_MAX": "2", **os.environ}


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


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return f" ({lines[-1].strip()})" if lines else ""


def _raise_if_error(message: dict[str, Any], settings: Settings) -> None:
    if message["event"] != "error":
        return
    kind = message["kind"]
    if kind == SqlResultTooLarge.code:
        raise SqlResultTooLarge(settings.sql_max_result_bytes)
    kinds: dict[str, type[HerdrecordError]] = {
        SqlRejected.code: SqlRejected,
        SqlFailed.code: SqlFailed,
        SqlError.code: SqlFailed,
        "record": HerdrecordError,
    }
    raise kinds.get(kind, SqlFailed)(message["message"])
