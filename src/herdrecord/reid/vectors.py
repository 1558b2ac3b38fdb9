"""Embedding vector helpers shared by ingest, linking and the embedder: unit rows, group sums
and a tracklet's quality-weighted descriptor."""

from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["group_sum", "normalise", "quality_weighted_descriptors"]


def group_sum(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Return the row sums of `values` (n, d) per group label (n,), shape (n_groups, d).

    One pass over the rows either way: labels in order (a batch's samples, by tracklet) are
    summed as runs (`np.add.reduceat`); any other order by a sparse one-hot product. (A dense
    one-hot product costs n_groups x n x d: 48 ms for one batch's 530 samples where the runs
    take 1.7 ms.)"""
    out_dtype = np.result_type(values.dtype, np.float32)
    if len(groups) == 0:
        return np.zeros((n_groups, values.shape[1]), dtype=out_dtype)
    if np.all(groups[1:] >= groups[:-1]):
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        summed = np.zeros((n_groups, values.shape[1]), dtype=out_dtype)
        summed[groups[starts]] = np.add.reduceat(values, starts, axis=0)
        return summed
    onehot = sparse.csr_matrix(
        (np.ones(len(groups), dtype=values.dtype), (groups, np.arange(len(groups)))),
        shape=(n_groups, len(groups)),
    )
    return np.asarray(onehot @ values)


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
