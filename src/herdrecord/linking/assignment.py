"""Joint assignment of one pen-day's tracklets to animals, under the barn's constraints.

Pure numpy/scipy on arrays; `linking.py` feeds it from the record and writes what it decides.

1. Chains: `stitching.py` joins each pen-day's track ends to later starts (calibrated data
   association, then the head count); each chain is a *cluster* that shares evidence.
2. Cliques: clusters with tracklets running at once are different animals. Sweeping the
   day's tracklets gives the maximal sets of clusters seen at one moment
   (`concurrent_cliques`); any two clusters seen together share one.
3. In time order, each clique's undecided clusters are assigned jointly (Hungarian) to the
   roster animals not already taken by a decided member, with an "unknown" option per cluster
   that is open only where more clusters run at once than the roster has animals (the head
   count). So no animal is ever in two places at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from herdrecord.linking.intervals import overlapping
from herdrecord.reid.vectors import group_sum, normalise

UNKNOWN = -1
NEG = -1e9  # score of a forbidden pairing (cannot-link, or an animal already taken)


@dataclass(frozen=True)
class PenDayTracklets:
    """The tracklets of one pen on one day; arrays of shape (n,) unless noted."""

    camera: np.ndarray  # camera ids (object)
    start_s: np.ndarray  # seconds since the epoch, float64
    end_s: np.ndarray
    first_xy: np.ndarray  # (n, 2) bbox centre of the first observation, px (NaN if none)
    last_xy: np.ndarray  # (n, 2) bbox centre of the last observation, px
    descriptor: np.ndarray  # (n, d) float32, L2-normalised
    weight: np.ndarray  # evidence behind each descriptor: sum of sample qualities


def centre_by_camera(t: PenDayTracklets) -> PenDayTracklets:
    """Return the tracklets with each camera-day's mean look removed from their descriptors.

    Every animal seen by one camera on one day shares the breed look, the lighting and the
    camera's view; that common part dwarfs what tells individuals apart. Subtracting the
    camera-day's own quality-weighted mean (the herd in that pen is the reference) leaves the
    individual part, and makes descriptors from different days and cameras comparable.
    """
    centred = t.descriptor.astype(np.float64).copy()
    for camera in np.unique(t.camera):
        rows = np.flatnonzero(t.camera == camera)
        weight = t.weight[rows]
        if len(rows) < 2 or weight.sum() <= 0:
            continue
        mean = (centred[rows] * weight[:, None]).sum(axis=0) / weight.sum()
        centred[rows] -= mean
    return PenDayTracklets(
        camera=t.camera,
        start_s=t.start_s,
        end_s=t.end_s,
        first_xy=t.first_xy,
        last_xy=t.last_xy,
        descriptor=normalise(centred).astype(np.float32),
        weight=t.weight,
    )


def day_scores(
    descriptor: np.ndarray, weight: np.ndarray, choice: np.ndarray, n_animals: int
) -> np.ndarray:
    """Return (k, a) similarity of each cluster to each animal's centroid of the day.

    The centroid leaves the cluster itself out, so a cluster is scored by the evidence the
    animal's other clusters give: short clusters borrow it from long ones.
    """
    k = descriptor.shape[0]
    assigned = np.flatnonzero(choice >= 0)
    sums = group_sum(descriptor[assigned] * weight[assigned, None], choice[assigned], n_animals)
    dots = descriptor @ sums.T  # (k, a)
    norms = np.tile(np.linalg.norm(sums, axis=1), (k, 1))
    # Leave-one-out for each cluster's own animal: |S - w d|^2 = |S|^2 - 2 w d.S + w^2.
    own = choice[assigned]
    w = weight[assigned]
    dot_own = dots[assigned, own]
    dots[assigned, own] = dot_own - w
    norms[assigned, own] = np.sqrt(
        np.maximum(norms[assigned, own] ** 2 - 2 * w * dot_own + w**2, 0.0)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = np.where(norms > 1e-9, dots / norms, np.nan)
    return np.asarray(sims)


@dataclass(frozen=True)
class Clusters:
    """Tracklets grouped into clusters; arrays of shape (k,) unless noted."""

    label: np.ndarray  # (n,) cluster of each tracklet
    start_s: np.ndarray
    end_s: np.ndarray
    descriptor: np.ndarray  # (k, d') what scores are computed on: `raw` in the learned metric
    raw: np.ndarray  # (k, d) weighted mean of member descriptors, L2-normalised (the pool's)
    weight: np.ndarray  # summed evidence
    duration_s: np.ndarray  # summed tracked seconds


def make_clusters(
    t: PenDayTracklets,
    label: np.ndarray,
    look: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Clusters:
    """Return the clusters of a labelling, pooling their members' evidence; with `look`
    (the record's learned metric) their descriptors are scored in it."""
    k = int(label.max()) + 1 if len(label) else 0
    summed = group_sum(t.descriptor.astype(np.float64) * t.weight[:, None], label, k)
    raw = normalise(summed).astype(np.float32)
    descriptor = look(raw) if look is not None and k else raw
    start = np.full(k, np.inf)
    end = np.full(k, -np.inf)
    np.minimum.at(start, label, t.start_s)
    np.maximum.at(end, label, t.end_s)
    return Clusters(
        label=label,
        start_s=start,
        end_s=end,
        descriptor=descriptor,
        raw=raw,
        weight=np.bincount(label, weights=t.weight, minlength=k),
        duration_s=np.bincount(label, weights=t.end_s - t.start_s + 1.0, minlength=k),
    )


def maximal_cliques(start_s: np.ndarray, end_s: np.ndarray) -> list[np.ndarray]:
    """Return the maximal sets of mutually overlapping intervals, in time order."""
    events = [(float(s), 1, i) for i, s in enumerate(start_s)]
    # An interval ending exactly when another starts does not overlap it: ends sort first.
    events += [(float(e) + 1e-6, 0, i) for i, e in enumerate(end_s)]
    events.sort()
    active: set[int] = set()
    cliques: list[np.ndarray] = []
    grew = False
    for _, is_start, i in events:
        if is_start:
            active.add(i)
            grew = True
        else:
            if grew:
                cliques.append(np.array(sorted(active)))
                grew = False
            active.discard(i)
    return cliques


def concurrent_cliques(
    start_s: np.ndarray, end_s: np.ndarray, label: np.ndarray
) -> list[list[int]]:
    """Return the maximal sets of clusters whose tracklets run at one moment, in time order.

    Two clusters are different animals when tracklets of theirs run at once, not when their
    spans overlap: two chains of one animal that take turns (on two cameras whose views meet,
    or either side of a stretch the tracker lost it) span the same hours without ever being
    seen together. Each maximal set of tracklets running at once gives the clusters they
    belong to; every pair of clusters seen together shares one such set.
    """
    cliques: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    for members in maximal_cliques(start_s, end_s):
        clique = tuple(sorted(set(label[members].tolist())))
        if clique not in seen:
            seen.add(clique)
            cliques.append(list(clique))
    return cliques


def solve(
    scores: np.ndarray,
    start_s: np.ndarray,
    end_s: np.ndarray,
    threshold: float,
    fixed: np.ndarray | None = None,
    cliques: list[list[int]] | None = None,
) -> np.ndarray:
    """Return the animal column of each cluster (or UNKNOWN), solved clique by clique.

    `scores` (k, a) is each cluster's similarity to each roster animal (NEG = forbidden);
    `fixed` (k,) pre-decides clusters (tag anchors, people's answers), UNKNOWN where free;
    `cliques` are `maximal_cliques(start_s, end_s)` when the caller has them already.

    The head count decides who may be unknown: while a clique has no more free clusters than
    open animals, every cluster takes an animal (the pen holds that many; appearance only
    says which). Only where more clusters run at once than the roster has open animals is
    there evidence of someone else, and then a cluster must beat `threshold` to be linked.
    """
    k, a = scores.shape
    if cliques is None:
        cliques = [c.tolist() for c in maximal_cliques(start_s, end_s)]
    choice: list[int] = [UNKNOWN] * k if fixed is None else [int(x) for x in fixed]
    decided = [c != UNKNOWN for c in choice]
    usable = scores > NEG / 2
    # Python lists: a sweep visits hundreds of cliques, mostly with a single newcomer, and
    # per-element numpy calls would cost more than the arithmetic.
    rows = scores.tolist()
    preference = np.argsort(-scores, axis=1, kind="stable").tolist() if a else [[]] * k
    for clique in cliques:
        free = [c for c in clique if not decided[c]]
        if not free:
            continue
        held = {choice[c] for c in clique if decided[c]}
        open_columns = np.array([col for col in range(a) if col not in held], dtype=np.int64)
        free_rows = np.array(free, dtype=np.int64)
        room = int(usable[np.ix_(free_rows, open_columns)].any(axis=0).sum())
        price = FORCED if len(free) <= room else threshold
        if len(free) == 1:
            # One newcomer: the best animal not held by the clique, if it beats the price
            # (what the Hungarian below would decide, without its overhead).
            c = free[0]
            for column in preference[c]:
                if column not in held:
                    value = rows[c][column]
                    if value > NEG / 2 and value > price:
                        choice[c] = column
                    break
            decided[c] = True
            continue
        block = scores[np.ix_(free_rows, open_columns)]
        if len(free) <= WIDE_CLIQUE:
            # One "unknown" column per cluster at the price: an animal must beat it.
            unknown = np.full((len(free), len(free)), NEG)
            np.fill_diagonal(unknown, price)
            picked, columns = linear_sum_assignment(np.hstack([block, unknown]), maximize=True)
        else:
            # The same optimum without the (free, free) unknown block, which a clique of
            # thousands would not fit in memory: a cluster gains (score - price) by taking an
            # animal and nothing by staying unknown, so the best pairs of the rectangular
            # assignment on the gains, less those that gain nothing, are the answer.
            gain = np.maximum(block - price, 0.0)
            picked, columns = linear_sum_assignment(gain, maximize=True)
            taken = gain[picked, columns] > 0
            picked, columns = picked[taken], columns[taken]
        for row, col in zip(picked, columns, strict=True):
            cluster = free[row]
            if col < len(open_columns) and block[row, col] > NEG / 2:
                choice[cluster] = int(open_columns[col])
            decided[cluster] = True
    return np.array(choice, dtype=np.int64)


# Cliques of more free clusters than this are solved without a square "unknown" block (the
# same optimum; ties may fall otherwise). Real pens run tens of tracks at once.
WIDE_CLIQUE = 512
FORCED = NEG / 4  # the price of "unknown" where the head count leaves no room for a stranger


def margins(scores: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each cluster's score for its choice and its lead over the best other animal."""
    k, a = scores.shape
    if a == 0:
        return np.full(k, np.nan), np.full(k, np.nan)
    rows = np.arange(k)
    chosen = np.where(choice >= 0, scores[rows, np.maximum(choice, 0)], np.nan)
    others = scores.copy()
    others[rows[choice >= 0], choice[choice >= 0]] = NEG
    runner_up = others.max(axis=1)
    best = np.where(choice >= 0, chosen, scores.max(axis=1))
    lead = np.where(runner_up > NEG / 2, best - runner_up, 1.0)
    return chosen, lead


def group_unknowns(clusters: Clusters, members: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Return groups of unknown clusters that look alike and never overlap in time.

    Greedy, most evidence first: a cluster joins the most similar group whose centroid it
    matches above the threshold and none of whose members it overlaps; else it starts one.
    """
    order = members[np.argsort(-clusters.weight[members], kind="stable")]
    groups: list[list[int]] = []
    sums: list[np.ndarray] = []
    for c in order:
        best, best_score = -1, threshold
        together = overlapping(clusters.start_s, clusters.end_s, int(c))
        for g, group in enumerate(groups):
            if together[group].any():
                continue
            score = float(clusters.descriptor[c] @ normalise(sums[g]))
            if score >= best_score:
                best, best_score = g, score
        if best < 0:
            groups.append([int(c)])
            sums.append(clusters.descriptor[c] * clusters.weight[c])
        else:
            groups[best].append(int(c))
            sums[best] = sums[best] + clusters.descriptor[c] * clusters.weight[c]
    return [np.array(group) for group in groups]


def calibrate_threshold(genuine: np.ndarray, impostor: np.ndarray, default: float) -> float:
    """Return the similarity above which a cluster may be linked to an animal.

    Genuine pairs are continuations (the same animal, by the tracker); impostor pairs are
    clusters that overlap in time in one pen (different animals, by physics). The threshold
    is the point that minimises the sum of the two error rates, but never below the 99th
    percentile of impostors: a wrong link costs more than an unknown, which review or the
    next day's evidence can still resolve. With fewer than 20 pairs of either kind, `default`.
    """
    if len(genuine) < 20 or len(impostor) < 20:
        return default
    grid = np.linspace(-1.0, 1.0, 801)
    false_reject = np.searchsorted(np.sort(genuine), grid, side="left") / len(genuine)
    false_accept = 1.0 - np.searchsorted(np.sort(impostor), grid, side="left") / len(impostor)
    balanced = float(grid[np.argmin(false_reject + false_accept)])
    return max(balanced, float(np.quantile(impostor, IMPOSTOR_QUANTILE)))


IMPOSTOR_QUANTILE = 0.99
