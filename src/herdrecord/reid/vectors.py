"""Embedding vector helpers shared by ingest, linking and the embedder: unit rows, group sums
and a tracklet's quality-weighted descriptor."""

from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["DENSE_GROUP_CELLS", "group_sum", "normalise", "quality_weighted_descriptors"]


def group_sum(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Return the row sums of `values` (n, d) per group label (n,), shape (n_groups, d)."""
    if n_groups * len(groups) <= DENSE_GROUP_CELLS:
        # Small (a pen-day's clusters): a dense one-hot product runs on the BLAS.
        onehot = np.zeros((n_groups, len(groups)), dtype=values.dtype)
        onehot[groups, np.arange(len(groups))] = 1.0
        return np.asarray(onehot @ values)
    # Large (a run's samples): a sparse one-hot product, one pass over the rows.
    onehot = sparse.csr_matrix(
        (np.ones(len(groups), dtype=values.dtype), (groups, np.arange(len(groups)))),
        shape=(n_groups, len(groups)),
    )
    return np.asarray(onehot @ values)


DENSE_GROUP_CELLS = 4_000_000


def quality_weighted_descriptors(
    vectors: np.ndarray, quality: np.ndarray, owner: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return each of `n` tracklets' descriptor (n, d) float32, the normalised
    quality-weighted mean of its unit sample embeddings, and its summed quality (n,).

    `vectors` (m, d) float32 is scaled in place: a run's samples are hundreds of MB."""
    norms = np.sqrt(np.einsum("nd,nd->n", vectors, vectors)).astype(np.float32)
    scale = np.asarray(quality / np.where(norms > 0, norms, np.float32(1)), dtype=np.float32)
    vectors *= scale[:, None]
    summed = group_sum(vectors, owner, n).astype(np.float32)
    weight = np.bincount(owner, weights=quality, minlength=n)
    return normalise(summed).astype(np.float32), weight


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Return rows scaled to unit length (zero rows stay zero), in the input's precision."""
    squared = np.einsum("...d,...d->...", vectors, vectors)
    norms = np.sqrt(squared)[..., None]
    return np.asarray(vectors / np.where(norms > 0, norms, 1).astype(vectors.dtype))
