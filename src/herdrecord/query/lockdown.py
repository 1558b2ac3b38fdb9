"""The sandbox's DuckDB connection: the record's views and nothing else, no files, URLs or
extensions, memory and threads capped, the configuration locked; and reading a query's rows
from it within the row and byte caps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from herdrecord.config import Settings
from herdrecord.errors import SqlError, SqlFailed, SqlRejected, SqlResultTooLarge
from herdrecord.query.fleet import fleet_connection, fleet_records
from herdrecord.query.statements import one_line
from herdrecord.query.views import VIEWS, connect
from herdrecord.store.record import open_record

# Small batches, so that the byte cap stops the reading close to where it is passed.
_READ_BATCH_ROWS = 4096


@dataclass(frozen=True)
class Rows:
    """Rows read from a locked-down connection, at most the limit, and whether more were left."""

    table: pa.Table
    truncated: bool


def sandbox_connection(
    record_path: str | Path, settings: Settings, fleet: bool = False
) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection with the record's views (or a fleet's: every farm's rows
    with farm_id) that can read nothing else, load nothing, change no setting and use at
    most the configured memory and threads."""
    # The Lance tables are held by the views as Python dataset objects, not opened by path, so
    # their scans keep working once external access is off. The views are built first anyway,
    # while nothing is locked.
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
    """Run a query on a locked-down connection; return at most `sql_max_rows` of its rows,
    or fail once they pass `sql_max_result_bytes`."""
    max_rows, max_bytes = settings.sql_max_rows, settings.sql_max_result_bytes
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement without rows (only when the check was skipped)
            return Rows(pa.table({}), truncated=False)
        reader = relation.to_arrow_reader(min(max_rows + 1, _READ_BATCH_ROWS))
        batches: list[pa.RecordBatch] = []
        rows = size = 0
        truncated = False
        with reader:  # closed when the reading stops early, so the connection takes another
            for batch in reader:
                if rows + batch.num_rows > max_rows:  # a row past the limit: there are more
                    batch, truncated = batch.slice(0, max_rows - rows), True
                size += batch.nbytes
                if size > max_bytes:
                    raise SqlResultTooLarge(max_bytes)
                batches.append(batch)
                rows += batch.num_rows
                if truncated:
                    break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.Error as exc:
        raise translate(exc, settings) from None
    return Rows(table, truncated=truncated)


def translate(exc: duckdb.Error, settings: Settings) -> SqlError:
    """Return DuckDB's error as the sandbox's one-line error."""
    text = one_line(str(exc))
    if _needs_extension(exc, text):
        return SqlRejected(f"herdrecord sql loads no extensions: {text}")
    if isinstance(exc, duckdb.PermissionException):
        return SqlRejected(
            f"herdrecord sql reads only the record's views ({', '.join(VIEWS)}), not files or "
            f"URLs: {text.removeprefix('Permission Error: ')}"
        )
    if "configuration has been locked" in text:
        return SqlRejected(f"settings cannot be changed in herdrecord sql ({text})")
    if isinstance(exc, duckdb.OutOfMemoryException) and "(bad allocation)" in text:
        # Not DuckDB's own accounting: the OS refused the memory (the address-space cap).
        return out_of_address_space(settings)
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


def out_of_address_space(settings: Settings) -> SqlFailed:
    """Return the error of a query that needed more memory than its process may map."""
    return SqlFailed(
        "the query needed more memory than the sandbox's process may map (its libraries + "
        f"{settings.sql_memory_limit} HERDRECORD_SQL_MEMORY_LIMIT + "
        f"{settings.sql_process_headroom} HERDRECORD_SQL_PROCESS_HEADROOM) — filter or "
        "aggregate more, or raise the limits"
    )
