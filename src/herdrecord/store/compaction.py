"""Compaction on a schedule: every LanceDB `add()` is a new version and fragment, so the
writers (ingest, replay, the service's writer, retention) compact a table once it holds more
fragments than `compact_after_fragments`, removing versions older than `keep_versions_days`."""

from __future__ import annotations

from datetime import timedelta

from herdrecord.store.record import Record


def compact_if_fragmented(record: Record, force: bool = False) -> tuple[str, ...]:
    """Compact tables with more fragments than the setting allows; return their names."""
    limit = record.settings.compact_after_fragments
    keep = timedelta(days=record.settings.keep_versions_days)
    compacted = []
    for name in record.table_names():
        table = record.table(name)
        fragments = len(table.to_lance().get_fragments())
        if fragments > limit or (force and fragments > 1):
            table.optimize(cleanup_older_than=keep)
            compacted.append(name)
    return tuple(compacted)
