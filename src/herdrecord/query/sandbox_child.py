"""The SQL sandbox's process: it loads its libraries, waits for one request, runs it, exits.

`python -P -m herdrecord.query.sandbox_child` starts, imports DuckDB, Lance and the views, and
reads one JSON line from stdin: the record, the SQL, the settings and where to write the rows.
Before anything of the request runs, it caps its own address space (RLIMIT_AS) at what its
libraries have mapped, plus `sql_memory_limit`, plus `sql_process_headroom`: DuckDB's memory
limit does not count every allocation (a two-gigabyte `repeat()` passes it), and the OS limit
does. It then opens the record, builds the locked-down connection, runs the query, writes the
rows as an Arrow IPC file and says so on stdout, one JSON message a line. A process started
ahead of its query (the service keeps one warm) waits at the read; at EOF it exits unused.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from herdrecord.config import Settings, memory_bytes
from herdrecord.errors import HerdrecordError, SqlError
from herdrecord.query.lockdown import (
    out_of_address_space,
    read_rows,
    sandbox_connection,
    translate,
)
from herdrecord.query.statements import check_statement, one_line


def limit_address_space(settings: Settings) -> int | None:
    """Cap this process's address space at what it maps now plus the query's memory and the
    headroom; return the cap in bytes (None where the system tells no mapped size)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # no procfs: the limit cannot be sized
        return None
    mapped = pages * os.sysconf("SC_PAGE_SIZE")
    cap = mapped + memory_bytes(settings.sql_memory_limit)
    cap += memory_bytes(settings.sql_process_headroom)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return cap


def serve() -> int:
    """Wait for one request on stdin; run it; answer on stdout (the real one)."""
    # The protocol owns the real stdout; whatever a library prints goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def send(**message: Any) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    line = sys.stdin.readline()
    if not line.strip():  # let go unused: the service closed, or needs no more
        return 0
    request = json.loads(line)
    settings = Settings(**request["settings"])
    try:
        cap = limit_address_space(settings)
        con = sandbox_connection(request["record"], settings, bool(request.get("fleet")))
        send(event="ready", address_space_bytes=cap)
        check_statement(request["sql"])
        rows = read_rows(con, request["sql"], settings)
        with (
            pa.OSFile(request["result"], "wb") as sink,
            pa.ipc.new_file(sink, rows.table.schema) as writer,
        ):
            writer.write_table(rows.table)
        send(event="done", rows=rows.table.num_rows, truncated=rows.truncated)
    except SqlError as exc:
        send(event="error", kind=exc.code, message=str(exc))
    except HerdrecordError as exc:
        send(event="error", kind="record", message=str(exc))
    except duckdb.Error as exc:
        send(event="error", kind="failed", message=str(translate(exc, settings)))
    except MemoryError:
        send(event="error", kind="failed", message=str(out_of_address_space(settings)))
    except Exception as exc:
        traceback.print_exc()
        send(event="error", kind="failed", message=one_line(f"{type(exc).__name__}: {exc}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(serve())
