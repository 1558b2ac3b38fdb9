"""herdrecord: a longitudinal per-animal visual record database for livestock.

The library's public face: open or create a record, take batches in through the one intake
pipeline, link, answer review questions, record events, read timelines, ask questions, export.

    from herdrecord import Settings, ingest_batches, open_record

    record = open_record("herd-demo/record", Settings())
    result = ingest_batches(record, ["batches/"])  # journalled, committed, linked

Names load on first use, so `import herdrecord` stays cheap (the SQL sandbox's child process
and the CLI's start-up import it).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# LanceDB's Rust logger reads LANCEDB_LOG once, when lancedb is first imported (always after
# this line): at its default level it prints a WARN for every table it creates ("No existing
# dataset at ..., it will be created"), which means nothing to a user. Errors still show;
# a level set by the user wins (LANCE_LOG is the same switch for the lance package).
os.environ.setdefault("LANCEDB_LOG", "error")
os.environ.setdefault("LANCE_LOG", "error")

from herdrecord._version import __version__
from herdrecord.errors import (
    BatchConflict,
    BatchRejected,
    HerdrecordError,
    InvalidInput,
    MigrationRequired,
    NotFound,
    RecordExists,
    RecordLocked,
    RecordNotFound,
    SchemaTooNew,
)

if TYPE_CHECKING:
    from herdrecord.config import Settings
    from herdrecord.events.csv_import import import_events_csv
    from herdrecord.events.store import add_events
    from herdrecord.ingest.pipeline import IntakeResult, LinkPolicy, ingest_batches
    from herdrecord.linking.review import confirm, merge, reassign, split
    from herdrecord.linking.run import LinkReport, link_pending
    from herdrecord.lookup.review_queue import review_queue
    from herdrecord.lookup.timeline import animal_timeline
    from herdrecord.query.cohorts import run_query
    from herdrecord.query.export import export_parquet
    from herdrecord.query.sandbox import run_sql
    from herdrecord.store.record import Record, create_record, migrate_record, open_record

_LAZY = {
    "Settings": "herdrecord.config",
    "Record": "herdrecord.store.record",
    "create_record": "herdrecord.store.record",
    "open_record": "herdrecord.store.record",
    "migrate_record": "herdrecord.store.record",
    "ingest_batches": "herdrecord.ingest.pipeline",
    "IntakeResult": "herdrecord.ingest.pipeline",
    "LinkPolicy": "herdrecord.ingest.pipeline",
    "link_pending": "herdrecord.linking.run",
    "LinkReport": "herdrecord.linking.run",
    "review_queue": "herdrecord.lookup.review_queue",
    "confirm": "herdrecord.linking.review",
    "reassign": "herdrecord.linking.review",
    "merge": "herdrecord.linking.review",
    "split": "herdrecord.linking.review",
    "add_events": "herdrecord.events.store",
    "import_events_csv": "herdrecord.events.csv_import",
    "animal_timeline": "herdrecord.lookup.timeline",
    "run_query": "herdrecord.query.cohorts",
    "run_sql": "herdrecord.query.sandbox",
    "export_parquet": "herdrecord.query.export",
}

__all__ = [
    "BatchConflict",
    "BatchRejected",
    "HerdrecordError",
    "IntakeResult",
    "InvalidInput",
    "LinkPolicy",
    "LinkReport",
    "MigrationRequired",
    "NotFound",
    "Record",
    "RecordExists",
    "RecordLocked",
    "RecordNotFound",
    "SchemaTooNew",
    "Settings",
    "__version__",
    "add_events",
    "animal_timeline",
    "confirm",
    "create_record",
    "export_parquet",
    "import_events_csv",
    "ingest_batches",
    "link_pending",
    "merge",
    "migrate_record",
    "open_record",
    "reassign",
    "review_queue",
    "run_query",
    "run_sql",
    "split",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'herdrecord' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
