"""What `benchmarks/linking.py` compares herdrecord with, and how it scores link confidence.

All of these see the same tracklet descriptors: each tracklet's stored descriptor with its
camera-day's quality-weighted mean removed (`centred`), the reference the linker uses too.
  floor    per-tracklet nearest neighbour, no constraints, no truth;
  oracle   per-tracklet nearest true same-day centroid (truth groups the other tracklets);
  ceiling  perfect within-day grouping (truth), then a Hungarian match of each day's groups
           to the identities of earlier days, with no truth across days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

CEILING_POOL_DAYS = 3  # an identity unseen this many days is no longer matched (left the barn)
# A match at or below this cosine is a newcomer: centred centroids of two different animals
# sit around 0, so only an anti-correlated pair is surely not the same animal. (A relative
# cut, half the day's median match, enrolled false newcomers when identity is weak.)
CEILING_MIN_MATCH_COS = 0.0
CALIBRATION_BINS = 10


def centred(
    descriptor: np.ndarray, weight: np.ndarray, pen_day_camera: Sequence[tuple[object, ...]]
) -> np.ndarray:
    """Return unit descriptors (n, d) with each camera-day's weighted mean removed.

    Every animal a camera sees on a day shares the breed look, the light and the view;
    the individual part is what is left. `pen_day_camera` (n,) keys each tracklet's group.
    """
    out = descriptor.astype(np.float64).copy()
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for row, key in enumerate(pen_day_camera):
        groups[key].append(row)
    for rows_list in groups.values():
        rows = np.array(rows_list)
        w = weight[rows]
        if len(rows) >= 2 and w.sum() > 0:
            out[rows] -= (out[rows] * w[:, None]).sum(axis=0) / w.sum()
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.asarray(out / np.where(norm > 0, norm, 1.0), dtype=np.float32)


def nearest_neighbour_floor(
    descriptors: np.ndarray, start_s: np.ndarray, threshold: float, window_days: float = 3.0
) -> list[str | None]:
    """Give each tracklet, in time order, the identity of its nearest earlier tracklet.

    The gallery is the tracklets of the last `window_days` (older ones have drifted away and
    would only slow the search); below `threshold` a tracklet starts a new identity.
    """
    order = np.argsort(start_s, kind="stable")
    ordered = np.ascontiguousarray(descriptors[order], dtype=np.float32)
    starts = start_s[order]
    lows = np.searchsorted(starts, starts - window_days * 86_400, side="left")
    labels = np.empty(len(order), dtype=object)
    next_id = 0
    for p in range(len(order)):
        lo = int(lows[p])
        if p > lo:
            sims = ordered[lo:p] @ ordered[p]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                labels[p] = labels[lo + best]
                continue
        labels[p] = f"N{next_id}"
        next_id += 1
    out: list[str | None] = [None] * len(order)
    for p, row in enumerate(order):
        out[int(row)] = str(labels[p])
    return out


def _pen_day_rows(pen_day: Sequence[tuple[object, ...]]) -> list[np.ndarray]:
    """Return the rows of each pen-day, in sorted pen-day order."""
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for row, key in enumerate(pen_day):
        groups[key].append(row)
    return [np.array(groups[key]) for key in sorted(groups, key=str)]


def nearest_true_day_centroid(
    descriptors: np.ndarray,
    true_id: Sequence[str],
    seconds: np.ndarray,
    pen_day: Sequence[tuple[object, ...]],
) -> list[str | None]:
    """Give each tracklet the animal whose true centroid over the pen-day's other tracklets
    is nearest (an oracle: truth groups the day, the tracklet's own look decides).

    Centroids are seconds-weighted sums of the centred descriptors, leaving the tracklet
    itself out; an animal seen in no other tracklet of the day cannot be chosen.
    """
    out: list[str | None] = [None] * len(true_id)
    for rows in _pen_day_rows(pen_day):
        animals = sorted({true_id[r] for r in rows})
        index = {a: i for i, a in enumerate(animals)}
        member = np.array([index[true_id[r]] for r in rows])
        x = descriptors[rows].astype(np.float64) * seconds[rows, None]
        sums = np.zeros((len(animals), descriptors.shape[1]))
        np.add.at(sums, member, x)
        counts = np.bincount(member, minlength=len(animals))
        # Leave one out: (n, a) similarity of each tracklet to each animal's centroid.
        own = descriptors[rows].astype(np.float64)
        dots = own @ sums.T
        norms_sq = np.tile((sums**2).sum(axis=1), (len(rows), 1))
        mine = np.arange(len(rows))
        dots[mine, member] -= (own * x).sum(axis=1)
        norms_sq[mine, member] = ((sums[member] - x) ** 2).sum(axis=1)
        sim = dots / np.sqrt(np.maximum(norms_sq, 1e-12))
        alone = counts[member] == 1
        sim[mine[alone], member[alone]] = -np.inf
        best = np.argmax(sim, axis=1)
        for i, r in enumerate(rows):
            out[int(r)] = animals[int(best[i])]
    return out


def perfect_grouping_ceiling(
    descriptors: np.ndarray,
    true_id: Sequence[str],
    seconds: np.ndarray,
    pen_day: Sequence[tuple[object, ...]],
) -> list[str | None]:
    """Group each pen-day's tracklets by their true animal, then carry identities across
    days without truth: a Hungarian match, per day over the whole barn (so movers are
    found), of the day's group centroids to each identity's last-seen centroid.

    A group starts a new identity when there are more groups than identities (the count
    rose), or when its match is at most `CEILING_MIN_MATCH_COS`; identities unseen for
    `CEILING_POOL_DAYS` days are no longer matched.
    """
    out: list[str | None] = [None] * len(true_id)
    by_day: dict[object, list[np.ndarray]] = defaultdict(list)
    for rows in _pen_day_rows(pen_day):
        by_day[pen_day[int(rows[0])][1]].append(rows)
    pool: dict[str, tuple[np.ndarray, int]] = {}  # identity -> (centroid, last day index)
    next_id = 0
    for day_index, day in enumerate(sorted(by_day, key=str)):
        groups: list[np.ndarray] = []
        for rows in by_day[day]:
            owner: dict[str, list[int]] = defaultdict(list)
            for r in rows:
                owner[true_id[r]].append(int(r))
            groups.extend(np.array(owner[a]) for a in sorted(owner))
        centroids = np.stack(
            [(descriptors[g] * seconds[g, None]).sum(axis=0) for g in groups]
        ).astype(np.float64)
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        live = [i for i, (_, last) in pool.items() if day_index - last <= CEILING_POOL_DAYS]
        assigned: list[str | None] = [None] * len(groups)
        if live:
            known = np.stack([pool[i][0] for i in live])
            sim = centroids @ known.T
            g_idx, i_idx = linear_sum_assignment(-sim)
            matched = sim[g_idx, i_idx]
            for g, i, s in zip(g_idx.tolist(), i_idx.tolist(), matched.tolist(), strict=True):
                if s > CEILING_MIN_MATCH_COS:
                    assigned[g] = live[i]
        for g, group in enumerate(groups):
            identity = assigned[g]
            if identity is None:
                identity = f"C{next_id}"
                next_id += 1
            pool[identity] = (centroids[g], day_index)
            for r in group:
                out[int(r)] = identity
    return out


def identity_mapping(
    true_id: Sequence[str], predicted: Sequence[str | None], seconds: np.ndarray
) -> dict[str, str]:
    """Return the one-to-one predicted -> true identity mapping that IDF1 scores with (the
    one that maximises the seconds they share)."""
    trues = sorted(set(true_id))
    preds = sorted({p for p in predicted if p is not None})
    if not preds:
        return {}
    ti = {a: i for i, a in enumerate(trues)}
    pi = {p: i for i, p in enumerate(preds)}
    shared = np.zeros((len(preds), len(trues)))
    for t, p, s in zip(true_id, predicted, seconds.tolist(), strict=True):
        if p is not None:
            shared[pi[p], ti[t]] += s
    rows, cols = linear_sum_assignment(-shared)
    return {preds[r]: trues[c] for r, c in zip(rows, cols, strict=True) if shared[r, c] > 0}


@dataclass(frozen=True)
class Calibration:
    """How well link confidence predicts that a link is right (seconds-weighted)."""

    ece: float  # expected calibration error over `CALIBRATION_BINS` equal-width bins
    bins: list[dict[str, float]]  # per non-empty bin: lo, hi, links, seconds, confidence, right


def calibration(
    confidence: np.ndarray, right: np.ndarray, seconds: np.ndarray
) -> Calibration | None:
    """Return the reliability of link confidences (n,) in [0, 1] against whether each link
    is right (n,) bool, weighted by seconds; None when no link has a confidence."""
    known = np.isfinite(confidence)
    if not known.any():
        return None
    c, r, w = np.clip(confidence[known], 0.0, 1.0), right[known], seconds[known]
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    which = np.minimum(np.searchsorted(edges, c, side="right") - 1, CALIBRATION_BINS - 1)
    bins: list[dict[str, float]] = []
    ece = 0.0
    for b in range(CALIBRATION_BINS):
        at = which == b
        if not at.any():
            continue
        weight = float(w[at].sum())
        mean_c = float(np.average(c[at], weights=w[at]))
        share_right = float(np.average(r[at], weights=w[at]))
        ece += weight / float(w.sum()) * abs(mean_c - share_right)
        bins.append(
            {
                "lo": round(float(edges[b]), 2),
                "hi": round(float(edges[b + 1]), 2),
                "links": int(at.sum()),
                "seconds": round(weight),
                "confidence": round(mean_c, 4),
                "right": round(share_right, 4),
            }
        )
    return Calibration(ece=round(ece, 4), bins=bins)
