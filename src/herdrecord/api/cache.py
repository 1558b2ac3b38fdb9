"""Answers derived from the record, kept per version of the tables they are made of.

Lance tables are versioned: while `days`, `events`, `links` and `animals` keep their
versions, an animal's timeline cannot change, so it is built once and its ETag (a digest of
the versions) lets a client skip even the transfer (`If-None-Match` -> 304).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from herdrecord.store.record import Record

V = TypeVar("V")


class VersionedCache(Generic[V]):
    """A small LRU of values keyed by what they were made from (versions included)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """Return the value for `key`, making it (outside the lock) when it is not kept."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                self.hits += 1
                return self._values[key]
        value = make()
        with self._lock:
            self.misses += 1
            self._values[key] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return value


def table_versions(record: Record, names: Sequence[str]) -> tuple[int, ...]:
    """Return the current version of each named table."""
    return tuple(int(record.table(name).version) for name in names)


def etag(*parts: object) -> str:
    """Return a weak ETag for a response made from `parts` (ids, windows, versions)."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:20]
    return f'W/"{digest}"'
