"""Identity metrics for judging linking: IDF1 and open-set (new animal) precision/recall."""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

Labels = NDArray[Any] | Sequence[Hashable]
"""(n,) identity labels, one per item: str or int; None, "" or NaN where unknown."""


@dataclass(frozen=True)
class IdentityScores:
    """Identity precision, recall and F1 under the best one-to-one identity mapping."""

    idf1: float
    """2 IDTP / (2 IDTP + IDFP + IDFN)."""
    idp: float
    """IDTP / (IDTP + IDFP): of the linked weight, the share linked right."""
    idr: float
    """IDTP / (IDTP + IDFN): of the true weight, the share linked right."""
    idtp: float
    """Weight (seconds) of items whose predicted identity maps to their true identity."""
    idfp: float
    """Weight of linked items whose predicted identity does not map to their true one."""
    idfn: float
    """Weight of items whose true identity is not matched (unlinked items included)."""


@dataclass(frozen=True)
class OpenSetScores:
    """How well the system enrolled the animals that arrived during the run."""

    precision: float
    """n_matched / n_enrolled."""
    recall: float
    """n_matched / n_truly_new."""
    n_enrolled: int
    """Enrolled (provisional) predicted ids."""
    n_truly_new: int
    """Truly new animals that were observed (with positive weight)."""
    n_matched: int
    """Truly new animals that are the majority true id of some enrolled id."""


def idf1(truth: Labels, predicted: Labels, weights: ArrayLike | None = None) -> IdentityScores:
    """Return IDF1 of per-item `predicted` identities against `truth`, weighted by `weights`.

    `truth` and `predicted` are (n,) labels (str or int); a predicted None, "" or NaN means
    unlinked: its weight is a false negative, not a predicted identity. `weights` is (n,)
    observation time per item in seconds (default 1 each). IDF1 = 2 IDTP / (2 IDTP + IDFP
    + IDFN), IDTP maximised over one-to-one mappings of predicted to true identities
    (Ristani et al. 2016). A ratio with a zero denominator is NaN.
    """
    true_labels, predicted_labels, item_weights = _items(truth, predicted, weights)
    linked = _known(predicted_labels)
    true_codes, n_true = _codes(true_labels)
    predicted_codes, n_predicted = _codes(predicted_labels[linked])
    contingency = coo_matrix(
        (item_weights[linked], (true_codes[linked], predicted_codes)),
        shape=(n_true, n_predicted),
    ).tocsr()
    idtp = _best_matching_weight(contingency)
    idfn = float(item_weights.sum()) - idtp
    idfp = float(item_weights[linked].sum()) - idtp
    return IdentityScores(
        idf1=_ratio(2 * idtp, 2 * idtp + idfp + idfn),
        idp=_ratio(idtp, idtp + idfp),
        idr=_ratio(idtp, idtp + idfn),
        idtp=idtp,
        idfp=idfp,
        idfn=idfn,
    )


def open_set_scores(
    truth: Labels,
    predicted: Labels,
    enrolled: Collection[Hashable],
    truly_new: Collection[Hashable],
    weights: ArrayLike | None = None,
) -> OpenSetScores:
    """Return precision and recall of enrolling new animals.

    `truth` and `predicted` are (n,) per-item labels as for `idf1` (unlinked items are left
    out); `weights` is (n,) observation time in seconds (default 1 each). `enrolled` holds
    the predicted ids the system enrolled as new (provisional) animals; `truly_new` the
    true ids of animals not known at the start.

    Each enrolled id stands for its majority true id: the one with the most weight among
    its items (a plurality; ties go to the true id seen first). A truly new animal is
    *matched* when it is the majority true id of at least one enrolled id. Then

    - precision = matched / enrolled: an enrolled id counts when it stands for a truly new
      animal that no other enrolled id already counts for (a second enrolment of the same
      newcomer, an enrolment of a known animal, or one with no weighted items, does not);
    - recall = matched / truly new, over truly new animals observed with positive weight
      (an animal never seen could not have been enrolled).
    """
    true_labels, predicted_labels, item_weights = _items(truth, predicted, weights)
    linked = _known(predicted_labels)
    true_codes, _ = _codes(true_labels)
    names = list(dict.fromkeys(true_labels.tolist()))  # true label of each code
    enrolled_ids = set(enrolled)
    weight_of: dict[tuple[Hashable, int], float] = {}
    for label, code, weight in zip(
        predicted_labels[linked].tolist(),
        true_codes[linked].tolist(),
        item_weights[linked].tolist(),
        strict=True,
    ):
        if label in enrolled_ids:
            weight_of[label, code] = weight_of.get((label, code), 0.0) + weight
    majority: dict[Hashable, int] = {}
    heaviest: dict[Hashable, float] = {}
    # In order of true code, so that on a tie the strict ">" keeps the true id seen first.
    for (label, code), weight in sorted(weight_of.items(), key=lambda pair: pair[0][1]):
        if weight > heaviest.get(label, 0.0):
            heaviest[label] = weight
            majority[label] = code
    observed = {names[code] for code in np.unique(true_codes[item_weights > 0]).tolist()}
    new_observed = observed & set(truly_new)
    matched = {names[code] for code in majority.values()} & new_observed
    return OpenSetScores(
        precision=_ratio(len(matched), len(enrolled_ids)),
        recall=_ratio(len(matched), len(new_observed)),
        n_enrolled=len(enrolled_ids),
        n_truly_new=len(new_observed),
        n_matched=len(matched),
    )


def _items(
    truth: Labels, predicted: Labels, weights: ArrayLike | None
) -> tuple[NDArray[np.generic], NDArray[np.generic], NDArray[np.float64]]:
    true_labels = np.asarray(truth)
    predicted_labels = np.asarray(predicted)
    if true_labels.ndim != 1 or predicted_labels.shape != true_labels.shape:
        raise ValueError(
            f"truth and predicted must be 1-D of one length, got {true_labels.shape} "
            f"and {predicted_labels.shape}"
        )
    if not _known(true_labels).all():
        raise ValueError("truth holds missing labels (None, '' or NaN); every item needs one")
    if weights is None:
        item_weights = np.ones(true_labels.shape[0], dtype=np.float64)
    else:
        item_weights = np.asarray(weights, dtype=np.float64)
        if item_weights.shape != true_labels.shape:
            raise ValueError(f"weights must have shape {true_labels.shape}")
        if not np.isfinite(item_weights).all() or (item_weights < 0).any():
            raise ValueError("weights must be finite and non-negative (seconds observed)")
    return true_labels, predicted_labels, item_weights


def _known(labels: NDArray[np.generic]) -> NDArray[np.bool_]:
    """Return the (n,) mask of labels that are neither None, "" nor NaN."""
    if labels.dtype.kind in "iub":
        return np.ones(labels.shape, dtype=np.bool_)
    if labels.dtype.kind == "f":
        return np.asarray(~np.isnan(labels), dtype=np.bool_)
    if labels.dtype.kind in "US":
        return np.asarray(labels != labels.dtype.type(), dtype=np.bool_)
    return np.fromiter(
        (not _is_missing(label) for label in labels.tolist()), dtype=np.bool_, count=labels.size
    )


def _is_missing(label: object) -> bool:
    return label is None or label == "" or (isinstance(label, float) and math.isnan(label))


def _codes(labels: NDArray[np.generic]) -> tuple[NDArray[np.int64], int]:
    """Return (n,) codes numbering distinct labels in order of first appearance, and their count."""
    if labels.dtype.kind != "O":
        _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        rank = np.empty(first.size, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        return rank[inverse.reshape(-1)], int(first.size)
    # Object arrays may mix str and int, which np.unique cannot sort.
    numbering: dict[object, int] = {}
    codes = np.fromiter(
        (numbering.setdefault(label, len(numbering)) for label in labels.tolist()),
        dtype=np.int64,
        count=labels.size,
    )
    return codes, len(numbering)


def _best_matching_weight(contingency: csr_matrix) -> float:
    """Return the largest total weight of a one-to-one matching in a (true, predicted) matrix."""
    n_true, n_predicted = contingency.shape
    edges = contingency.tocoo()
    if edges.nnz == 0:
        return 0.0
    # Identities that never co-occur cannot affect each other's matching, so each
    # connected block of the bipartite graph is solved alone: the dense assignment
    # problems stay small even with tens of thousands of identities.
    graph = coo_matrix(
        (np.ones(edges.nnz), (edges.row, n_true + edges.col)),
        shape=(n_true + n_predicted, n_true + n_predicted),
    )
    n_blocks, block_of = connected_components(graph, directed=False)
    rows_in = np.bincount(block_of[:n_true], minlength=n_blocks)
    columns_in = np.bincount(block_of[n_true:], minlength=n_blocks)
    edge_block = block_of[edges.row]
    order = np.argsort(edge_block, kind="stable")
    sorted_block = edge_block[order]
    starts = np.flatnonzero(np.r_[True, sorted_block[1:] != sorted_block[:-1]])
    ends = np.r_[starts[1:], edges.nnz]
    blocks = sorted_block[starts]
    # A block with one true or one predicted identity is matched by its heaviest cell.
    simple = (rows_in[blocks] == 1) | (columns_in[blocks] == 1)
    heaviest = np.maximum.reduceat(edges.data[order], starts)
    total = float(heaviest[simple].sum())
    for start, end in zip(starts[~simple].tolist(), ends[~simple].tolist(), strict=True):
        chosen = order[start:end]
        rows, row_at = np.unique(edges.row[chosen], return_inverse=True)
        columns, column_at = np.unique(edges.col[chosen], return_inverse=True)
        dense = np.zeros((rows.size, columns.size))
        dense[row_at, column_at] = edges.data[chosen]
        picked_rows, picked_columns = linear_sum_assignment(dense, maximize=True)
        total += float(dense[picked_rows, picked_columns].sum())
    return total


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan
