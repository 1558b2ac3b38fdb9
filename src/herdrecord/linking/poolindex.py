"""The pool's FAISS index: loaded beside the record when its stamp is current, kept in step.

The index is a cache of the `pool` table, stamped with the table version it mirrors. Writers
open it before they change the pool (a stale or missing file is rebuilt from the table),
apply the pool's changes to it as removals and additions (no rebuild per merge or split),
write the pool table, and save the index stamped with the table's new version.
"""

from __future__ import annotations

import logging

import numpy as np

from herdrecord.linking.pool import Pool
from herdrecord.reid import FaissIndex, IndexStamp, index_bytes, load_index_bytes
from herdrecord.store.record import INDEX_FILE, Record

log = logging.getLogger("herdrecord.linking.poolindex")


def open_pool_index(record: Record, pool: Pool) -> FaissIndex:
    """Return the index of the pool as stored now: loaded if its stamp is current, else built."""
    stamp = _stamp(record, len(pool))
    try:
        data = record.location.read(INDEX_FILE)
    except OSError as error:  # an unreadable cache is rebuilt, as a missing one is
        log.warning("cannot read the index of %s (%s); it will be rebuilt", record.uri, error)
        data = None
    index = load_index_bytes(data, stamp, record.uri)
    if index is not None:
        return index
    index = FaissIndex(pool.dim, expected_size=len(pool))
    ids, vectors = pool.vectors_by_id()
    if len(ids):
        index.add(ids, vectors)
    return index


def sync_index(index: FaissIndex, pool: Pool) -> None:
    """Apply the pool's additions and removals to the index."""
    ids, vectors = pool.vectors_by_id()
    indexed = index.ids()
    gone = np.setdiff1d(indexed, ids)
    if len(gone):
        index.remove(gone)
    new = ~np.isin(ids, indexed)
    if new.any():
        index.add(ids[new], vectors[new])


def write_pool(record: Record, pool: Pool, index: FaissIndex) -> None:
    """Write the pool table, then the index stamped with the table's new version."""
    table = record.table("pool")
    record.ensure_writer()
    table.add(pool.to_arrow(table.schema), mode="overwrite")
    sync_index(index, pool)
    record.location.write(INDEX_FILE, index_bytes(index, _stamp(record, len(index))))


def nearest_animals(
    index: FaissIndex,
    owners: dict[int, str],
    queries: np.ndarray,
    candidates: set[str],
    k: int = 10,
) -> list[list[str]]:
    """Return, per query (m, d), the candidate animals among its k nearest exemplars.

    k stays within the depth the index is calibrated for (recall@10 >= 0.99 in IVF mode).
    """
    if len(index) == 0 or len(queries) == 0 or not candidates:
        return [[] for _ in range(len(queries))]
    found = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(index)))
    out = []
    for row in found.ids:
        animals = [owners.get(int(i)) for i in row if i >= 0]
        out.append(list(dict.fromkeys(a for a in animals if a in candidates)))
    return out


def index_stamp(record: Record, count: int) -> IndexStamp:
    """Return the stamp an index of `count` exemplars of the record's pool must carry."""
    return _stamp(record, count)


def _stamp(record: Record, count: int) -> IndexStamp:
    return IndexStamp(
        table_version=int(record.table("pool").version),
        dim=record.embedder.dim,
        embedder=record.embedder.name,
        count=count,
    )
