"""A statement's views alone: named queries build only the views their SQL names, from only
the tables those read, and answer as over every view."""

from __future__ import annotations

from herdrecord.query.cohorts import get_query
from herdrecord.query.views import VIEWS, connect, data_dictionary, views_named
from herdrecord.store.record import Record


def _catalog(con) -> set[str]:  # type: ignore[no-untyped-def]
    return {
        row[0]
        for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }


def test_a_named_query_names_its_views() -> None:
    growth = get_query("growth")
    assert growth.sql is not None
    named = views_named(growth.sql)
    assert {"days", "events"} <= named
    assert not named & {"tracklets", "observations", "keyframes", "pool"}


def test_only_the_named_views_and_what_they_read_are_made(record: Record) -> None:
    full = connect(record)
    some = connect(record, {"tracklets"})
    try:
        assert _catalog(full) == set(VIEWS)
        assert _catalog(some) == {"tracklets"}
        assert (
            some.sql("SELECT count(*) FROM tracklets").fetchall()
            == full.sql("SELECT count(*) FROM tracklets").fetchall()
        )
    finally:
        full.close()
        some.close()


def test_a_record_describes_its_views_as_the_data_dictionary_does(record: Record) -> None:
    con = connect(record)
    try:
        assert data_dictionary(record.embedder.dim, con) == data_dictionary(record.embedder.dim)
    finally:
        con.close()
