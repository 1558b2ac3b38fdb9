"""ExactIndex: brute-force numpy inner-product search, the oracle FAISS is tested against."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from herdrecord.reid.index import (
    SearchResult,
    check_ids,
    check_k,
    check_new_ids,
    check_vectors,
    empty_result,
)


class ExactIndex:
    """Hold vectors in one numpy array and score every query against all of them."""

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self._dim = dim
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, dim), dtype=np.float32)

    @property
    def dim(self) -> int:
        """Return the embedding dimension."""
        return self._dim

    def __len__(self) -> int:
        """Return the number of vectors held."""
        return int(self._ids.size)

    def ids(self) -> NDArray[np.int64]:
        """Return the (n,) ids held, ascending."""
        return np.sort(self._ids)

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add (n,) new non-negative ids with their (n, dim) unit vectors; ids must be unused."""
        new_ids = check_ids(ids)
        new_vectors = check_vectors(vectors, self._dim)
        check_new_ids(new_ids, new_vectors.shape[0])
        taken = np.isin(new_ids, self._ids)
        if taken.any():
            raise ValueError(
                f"ids already in the index: {new_ids[taken][:5].tolist()}; remove them first"
            )
        self._ids = np.concatenate([self._ids, new_ids])
        self._vectors = np.concatenate([self._vectors, new_vectors])

    def remove(self, ids: NDArray[np.int64]) -> int:
        """Remove (n,) ids; return how many were present (unknown ids are ignored)."""
        gone = np.isin(self._ids, check_ids(ids))
        removed = int(gone.sum())
        if removed:
            self._ids = self._ids[~gone]
            self._vectors = self._vectors[~gone]
        return removed

    def search(self, queries: NDArray[np.float32], k: int) -> SearchResult:
        """Return the k best (highest inner product) ids for each of the (m, dim) queries."""
        check_k(k)
        matrix = check_vectors(queries, self._dim, "queries")
        result = empty_result(matrix.shape[0], k)
        n = self._ids.size
        if n == 0:
            return result
        scores = matrix @ self._vectors.T  # (m, n)
        kept = min(k, n)
        # Every vector scoring at least the kept-th best is a candidate, so that ties at the
        # cut are all seen; sorting candidates by (score desc, id asc) makes ties resolve to
        # the lower id, independent of insertion order.
        cut = np.partition(scores, n - kept, axis=1)[:, n - kept]
        for row, (row_scores, row_cut) in enumerate(zip(scores, cut, strict=True)):
            candidates = np.flatnonzero(row_scores >= row_cut)
            order = np.lexsort((self._ids[candidates], -row_scores[candidates]))[:kept]
            result.scores[row, :kept] = row_scores[candidates[order]]
            result.ids[row, :kept] = self._ids[candidates[order]]
        return result
