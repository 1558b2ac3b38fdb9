"""Which time intervals overlap, in memory linear in what is asked for.

A pen-day can hold tens of thousands of tracklets; an (n, n) matrix of "seen together" would
take gigabytes where the answer is a few pairs per tracklet. These helpers sort once and
search, so their memory is O(n + pairs returned) and the pairs are capped where a caller only
samples them.
"""

from __future__ import annotations

import numpy as np

PAIR_CHUNK = 65_536  # pairs scored at once where each pair gathers two descriptors


def overlapping_pairs(
    start_s: np.ndarray, end_s: np.ndarray, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the pairs (i < j) of intervals that overlap in time (ends included), in (i, j)
    order, as `np.nonzero` of the upper triangle of the overlap matrix gives them.

    With `limit`, at most that many: evenly spaced over all of them (the same in any process).
    """
    n = len(start_s)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty
    order = np.argsort(start_s, kind="stable")
    starts = start_s[order]
    # Every later start up to this interval's end overlaps it (it ends no earlier than it starts).
    reach = np.searchsorted(starts, end_s[order], side="right")
    count = np.maximum(reach - np.arange(n) - 1, 0)
    total = int(count.sum())
    if total == 0:
        return empty, empty
    if limit is not None and total > limit:
        picked = np.linspace(0, total - 1, limit).astype(np.int64)
    else:
        picked = np.arange(total, dtype=np.int64)
    first = np.cumsum(count) - count  # index of each position's first pair
    # Positions with no pairs share their `first` with the next one: "right" skips past them.
    position = np.searchsorted(first, picked, side="right") - 1
    partner = position + 1 + (picked - first[position])
    a, b = order[position], order[partner]
    i, j = np.minimum(a, b), np.maximum(a, b)
    keep = np.lexsort((j, i))
    return i[keep].astype(np.int64), j[keep].astype(np.int64)


def overlapping(start_s: np.ndarray, end_s: np.ndarray, row: int) -> np.ndarray:
    """Return which intervals (bool, n) overlap interval `row` (itself included)."""
    return np.asarray((start_s <= end_s[row]) & (start_s[row] <= end_s))


def any_overlap(start_s: np.ndarray, end_s: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Return whether any interval of rows `a` overlaps any interval of rows `b`."""
    if len(a) == 0 or len(b) == 0:
        return False
    order = b[np.argsort(start_s[b], kind="stable")]
    latest_end = np.maximum.accumulate(end_s[order])
    # Of b's intervals starting no later than a's end, does one end no earlier than a starts?
    upto = np.searchsorted(start_s[order], end_s[a], side="right")
    started = upto > 0
    return bool(np.any(latest_end[np.maximum(upto - 1, 0)][started] >= start_s[a][started]))


def pair_cosines(x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Return the dot products of rows i and j of x (m,), a chunk of pairs at a time (the
    gathered rows of millions of pairs would not fit in memory at once)."""
    return pair_dots(x, i, x, j)


def pair_dots(x: np.ndarray, i: np.ndarray, y: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Return the dot products of rows i of x and rows j of y (m,), a chunk at a time."""
    out = np.empty(len(i), dtype=np.float64)
    for lo in range(0, len(i), PAIR_CHUNK):
        hi = lo + PAIR_CHUNK
        out[lo:hi] = np.einsum("nd,nd->n", x[i[lo:hi]], y[j[lo:hi]])
    return out


def most_at_once(start_s: np.ndarray, end_s: np.ndarray) -> int:
    """Return the most intervals running at one moment (ends included; an interval ending
    when another starts runs with it), in n log n."""
    if len(start_s) == 0:
        return 0
    starts = np.sort(np.asarray(start_s, dtype=np.float64))
    ends = np.sort(np.asarray(end_s, dtype=np.float64))
    # Running at each start: those started up to it, less those ended strictly before it.
    running = np.arange(1, len(starts) + 1) - np.searchsorted(ends, starts, side="left")
    return int(running.max())
