"""The re-ID index: a Protocol over the pool's exemplar embeddings, and its factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

MISSING_ID = -1
"""Id of a result slot with no neighbour (fewer than k vectors could be returned)."""


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The k nearest exemplars of each query, best first."""

    scores: NDArray[np.float32]
    """(m, k) inner products (cosine similarity for unit vectors); -inf in missing slots."""
    ids: NDArray[np.int64]
    """(m, k) exemplar ids; MISSING_ID (-1) in missing slots."""


@runtime_checkable
class EmbeddingIndex(Protocol):
    """A set of unit embeddings under non-negative int64 ids, searched by inner product."""

    @property
    def dim(self) -> int:
        """Return the embedding dimension."""
        ...

    def __len__(self) -> int:
        """Return the number of vectors held."""
        ...

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add (n,) new non-negative ids with their (n, dim) unit vectors; ids must be unused."""
        ...

    def remove(self, ids: NDArray[np.int64]) -> int:
        """Remove (n,) ids; return how many were present (unknown ids are ignored)."""
        ...

    def search(self, queries: NDArray[np.float32], k: int) -> SearchResult:
        """Return the k best (highest inner product) ids for each of the (m, dim) queries."""
        ...


def check_ids(ids: ArrayLike) -> NDArray[np.int64]:
    """Return `ids` as a contiguous (n,) int64 array; raise ValueError unless 1-D and >= 0."""
    array = np.ascontiguousarray(ids, dtype=np.int64)
    if array.ndim != 1:
        raise ValueError(f"ids must be a 1-D array, got shape {array.shape}")
    if array.size and int(array.min()) < 0:
        raise ValueError("ids must be non-negative: -1 marks a missing result")
    return array


def check_vectors(vectors: ArrayLike, dim: int, name: str = "vectors") -> NDArray[np.float32]:
    """Return `vectors` as a contiguous (n, dim) float32 array; raise ValueError otherwise."""
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {array.shape}")
    return array


def check_new_ids(ids: NDArray[np.int64], n_vectors: int) -> None:
    """Raise ValueError unless the (n,) `ids` match `n_vectors` rows and hold no repeats."""
    if ids.shape[0] != n_vectors:
        raise ValueError(f"{ids.shape[0]} ids for {n_vectors} vectors")
    if np.unique(ids).size != ids.size:
        raise ValueError("ids repeat within one add; each exemplar needs its own id")


def check_k(k: int) -> None:
    """Raise ValueError unless `k` >= 1."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def empty_result(m: int, k: int) -> SearchResult:
    """Return a result of m queries with all k slots missing."""
    return SearchResult(
        scores=np.full((m, k), -np.inf, dtype=np.float32),
        ids=np.full((m, k), MISSING_ID, dtype=np.int64),
    )
