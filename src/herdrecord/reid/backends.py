"""Choosing an index backend by name: FAISS (exact while small, IVF once large) or numpy."""

from __future__ import annotations

from herdrecord.reid.exact import ExactIndex
from herdrecord.reid.faiss_index import FaissIndex
from herdrecord.reid.index import EmbeddingIndex


def make_index(dim: int, expected_size: int, backend: str = "faiss") -> EmbeddingIndex:
    """Return an empty index of `dim`-d vectors for a pool expected to hold `expected_size`.

    `backend` is "faiss" (exact while small, IVF once large) or "exact" (numpy brute force).
    """
    if backend == "faiss":
        return FaissIndex(dim, expected_size=expected_size)
    if backend == "exact":
        return ExactIndex(dim)
    raise ValueError(f"unknown index backend {backend!r}; use 'faiss' or 'exact'")
