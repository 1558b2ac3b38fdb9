"""The package's shape: layers without cycles, a public API that loads, and the library's
intake pipeline giving the CLI's guarantees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grimp

import herdrecord
from herdrecord import Settings, create_record, ingest_batches, open_record
from herdrecord.ingest.journal import open_journal


def _cycles(graph: Any) -> list[list[str]]:
    """Return the strongly connected sets of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            for offset, child in enumerate(edges[node][position:], start=position):
                if child not in index:
                    work.append((node, offset + 1))
                    work.append((child, 0))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return found


def test_no_module_imports_itself_round_a_cycle() -> None:
    graph = grimp.build_graph("herdrecord", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.d")
    graph.add_import(importer="a.d", imported="a.b")
    assert _cycles(graph) == [["a.b", "a.c", "a.d"]]


def test_every_public_name_loads_and_import_herdrecord_stays_light() -> None:
    for name in herdrecord.__all__:
        assert getattr(herdrecord, name) is not None, name
    # A fresh interpreter: the package alone must not pull in LanceDB, torch or FastAPI
    # (the SQL sandbox's child process and the CLI's start-up import it).
    code = (
        "import sys, herdrecord; "
        "print(sorted(m for m in ('lancedb', 'torch', 'fastapi', 'duckdb') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_the_library_ingest_journals_and_links_like_the_cli(
    tmp_path: Path, batch_factory: Any
) -> None:
    record = create_record(str(tmp_path / "herd"), Settings(lock_timeout_s=0.5))
    folder = tmp_path / "batches"
    folder.mkdir()
    (folder / "one.json").write_text(json.dumps(batch_factory()))

    result = ingest_batches(record, [folder])

    assert result.count("accepted") == 1
    assert result.linked is not None and result.linked.tracklets > 0
    reopened = open_record(record.uri, Settings())
    links = reopened.table("links").to_arrow()
    assert links.num_rows == result.linked.tracklets  # every tracklet linked, once
    journal = open_journal(reopened)
    assert journal is not None
    try:
        assert journal.unsettled() == []  # journalled, committed, then cleared once durable
        summary = journal.summary()
        assert (summary.received, summary.unsynced, summary.failed) == (0, 0, 0)
    finally:
        journal.close()

    again = ingest_batches(record, [folder / "one.json"], link="never")
    assert again.count("duplicate") == 1 and again.linked is None


def test_the_moves_renamed_no_name_a_record_holds_on_disk() -> None:
    # Records written before the layout change name these files and metadata keys; a module
    # path in them would orphan a journal, a recovery note or an export's query provenance.
    from herdrecord.days.derive import DAYS_OWED_FILE
    from herdrecord.ingest.journal import JOURNAL_FILE
    from herdrecord.query.cohorts import META_PARAMS, META_QUERY
    from herdrecord.store.location import LOCK_FILE
    from herdrecord.store.record import LINK_RUN_FILE, PENDING_FILE
    from herdrecord.store.recovery import RECOVERY_FILE

    assert (JOURNAL_FILE, RECOVERY_FILE, LOCK_FILE) == (
        ".herdrecord.journal.sqlite",
        ".herdrecord.recovery.json",
        ".herdrecord.lock",
    )
    assert (PENDING_FILE, LINK_RUN_FILE, DAYS_OWED_FILE) == (
        ".herdrecord.pending.json",
        ".herdrecord.link-run.json",
        ".herdrecord.days-owed.json",
    )
    assert (META_QUERY, META_PARAMS) == (b"herdrecord.query", b"herdrecord.params")
