"""Stitch one pen-day's tracklets into chains: global data association of track ends to starts.

A tracker loses an animal when it lies down in a huddle, walks behind another or leaves the
frame for a moment, and picks it up again seconds to minutes later as a new tracklet. Per
camera and day, every track end is joined to at most one later track start and every start to
at most one end, all joins solved at once (a minimum-cost bipartite matching with a "no
successor" and a "no predecessor" option for each: Zhang, Li & Nevatia 2008, global data
association by network flows, in its one-frame-gap form).

The cost of a join is the negative log posterior odds that the two tracklets are one animal,
from three cues treated as independent: the time gap, the displacement given the gap (an
animal wanders: its spread grows with the gap) and the appearance of the two tracklets. Each
cue's likelihood ratio between "the same animal" and "some other start nearby in time" comes
from a two-component mixture fitted by EM to the record's own candidate pairs, per camera
(`fit_stitch_model`); nothing is set for one barn. No cue may veto: each contributes at most
`CUE_CLIP` nats either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_bipartite_matching, min_weight_full_bipartite_matching

from herdrecord.linking.intervals import pair_cosines, pair_dots
from herdrecord.reid.vectors import normalise

SEARCH_WINDOW_S = 900.0  # a join is looked for this far ahead; past it, the head count decides
# A bound on work and memory: each end's candidate starts are at most this many, the nearest
# in time (a 40-pig pen's ends have ~12 within the window; beyond these the head count joins).
MAX_CANDIDATES_PER_END = 64
# Likewise each chain end's later chain starts in the head-count pass, and each join's rival
# joins in the crossed-tail repair (nearest in time first).
MAX_CHAIN_CANDIDATES = 256
CUE_CLIP = 6.9  # ln 1000: no single cue is trusted more than 1000 to 1
EM_ROUNDS = 40
MIN_PAIRS = 30  # candidate pairs a camera needs for its own fit; fewer uses the pooled fit
MIN_GAP_S = 0.5  # gaps are whole seconds or more; log of a zero gap is taken at this
FLOOR = 1e-300


@dataclass(frozen=True)
class CueFit:
    """The fitted mixture of one camera: what a join looks like against what chance gives."""

    pairs: int  # candidate pairs the fit saw
    join_share: float  # prior share of track ends (with candidates) that have a successor
    gap_log_mean: float  # true joins: log gap ~ N(mean, sd^2), s
    gap_log_sd: float
    # True joins: log(1 + displacement px) ~ N(place_base + place_per_log_gap * log gap, sd^2)
    # (an animal wanders further the longer it is lost; log scale keeps the odd far one from
    # dominating the fit).
    place_base: float
    place_per_log_gap: float
    place_sd: float
    far_log_mean: float  # chance starts: log(1 + displacement) ~ N(mean, sd^2)
    far_log_sd: float
    same_sim_mean: float  # true joins: appearance cosine ~ N(mean, sd^2)
    same_sim_sd: float
    other_sim_mean: float  # chance starts: appearance cosine ~ N(mean, sd^2)
    other_sim_sd: float
    window_s: float = SEARCH_WINDOW_S

    def log_odds(self, gap_s: np.ndarray, distance_px: np.ndarray, sim: np.ndarray) -> np.ndarray:
        """Return the log odds (nats) of joining each candidate pair against leaving its end
        without a successor: the prior odds of a successor times the pair's likelihood ratio."""
        prior = np.log(self.join_share / (1.0 - self.join_share))
        return np.asarray(prior + self.log_ratio(gap_s, distance_px, sim))

    def log_ratio(self, gap_s: np.ndarray, distance_px: np.ndarray, sim: np.ndarray) -> np.ndarray:
        """Return each pair's log likelihood ratio, join against chance, each cue clipped."""
        look = _log_normal_pdf(sim, self.same_sim_mean, self.same_sim_sd) - _log_normal_pdf(
            sim, self.other_sim_mean, self.other_sim_sd
        )
        clipped = np.clip(look, -CUE_CLIP, CUE_CLIP)
        return np.asarray(self.gap_place_ratio(gap_s, distance_px) + clipped)

    def gap_place_ratio(self, gap_s: np.ndarray, distance_px: np.ndarray) -> np.ndarray:
        """Return the clipped log likelihood ratios of the gap and the place, summed."""
        g = np.maximum(gap_s, MIN_GAP_S)
        log_g = np.log(g)
        # Gap: lognormal (density in g) against uniform over the search window.
        gap = _log_normal_pdf(log_g, self.gap_log_mean, self.gap_log_sd) - log_g
        gap -= -np.log(self.window_s)
        # Displacement: Rayleigh with a spread growing with the gap, against the chance spread.
        known = np.isfinite(distance_px)
        log_d = np.log1p(np.where(known, distance_px, 0.0))
        near = _log_normal_pdf(
            log_d, self.place_base + self.place_per_log_gap * log_g, self.place_sd
        )
        far = _log_normal_pdf(log_d, self.far_log_mean, self.far_log_sd)
        place = np.where(known, near - far, 0.0)
        return np.asarray(np.clip(gap, -CUE_CLIP, CUE_CLIP) + np.clip(place, -CUE_CLIP, CUE_CLIP))


@dataclass(frozen=True)
class LookFit:
    """How alike two chains of one animal look against two chains of different animals."""

    same_mean: float
    same_sd: float
    other_mean: float
    other_sd: float

    def log_ratio(self, sim: np.ndarray) -> np.ndarray:
        """Return the appearance log likelihood ratio of chain pairs, clipped."""
        ratio = _log_normal_pdf(sim, self.same_mean, self.same_sd) - _log_normal_pdf(
            sim, self.other_mean, self.other_sd
        )
        return np.asarray(np.clip(ratio, -CUE_CLIP, CUE_CLIP))


PRIOR_LOOK = LookFit(same_mean=0.3, same_sd=0.3, other_mean=0.0, other_sd=0.3)


@dataclass(frozen=True)
class StitchModel:
    """The record's fitted join model: one fit per camera, and one pooled over all cameras."""

    version: int
    pooled: CueFit
    cameras: dict[str, CueFit] = field(default_factory=dict)
    look: LookFit = PRIOR_LOOK  # chain-level appearance, for the head-count pass

    def for_camera(self, camera_key: str) -> CueFit:
        """Return the camera's own fit, or the pooled one when it had too little data."""
        return self.cameras.get(camera_key, self.pooled)

    def to_json(self) -> dict[str, Any]:
        """Return the model as JSON-ready data."""
        return {
            "version": self.version,
            "pooled": asdict(self.pooled),
            "cameras": {k: asdict(v) for k, v in sorted(self.cameras.items())},
            "look": asdict(self.look),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StitchModel:
        """Return the model stored by `to_json`."""
        return cls(
            version=int(data["version"]),
            pooled=CueFit(**data["pooled"]),
            cameras={k: CueFit(**v) for k, v in data.get("cameras", {}).items()},
            look=LookFit(**data["look"]) if "look" in data else PRIOR_LOOK,
        )


# Until a record has candidate pairs of its own: a weak model that still orders joins by gap,
# place and look (wide spreads, so the data of the first run overrides it at once).
PRIOR_FIT = CueFit(
    pairs=0,
    join_share=0.2,
    gap_log_mean=np.log(10.0),
    gap_log_sd=1.5,
    place_base=1.0,
    place_per_log_gap=0.5,
    place_sd=1.0,
    far_log_mean=np.log(300.0),
    far_log_sd=0.8,
    same_sim_mean=0.3,
    same_sim_sd=0.3,
    other_sim_mean=0.0,
    other_sim_sd=0.3,
)


@dataclass(frozen=True)
class CandidatePairs:
    """Candidate joins (end of `i` to start of `j`) of one pen-day; arrays of shape (m,)."""

    i: np.ndarray
    j: np.ndarray
    gap_s: np.ndarray
    distance_px: np.ndarray  # NaN where a tracklet has no observations
    sim: np.ndarray  # cosine of the two tracklets' descriptors


def candidate_pairs(
    camera: np.ndarray,
    start_s: np.ndarray,
    end_s: np.ndarray,
    first_xy: np.ndarray,
    last_xy: np.ndarray,
    descriptor: np.ndarray,
    window_s: float = SEARCH_WINDOW_S,
) -> CandidatePairs:
    """Return every (end i, later start j) pair on one camera within the search window."""
    pieces_i: list[np.ndarray] = []
    pieces_j: list[np.ndarray] = []
    for cam in sorted(set(camera.tolist())):
        rows = np.flatnonzero(camera == cam)
        order = rows[np.argsort(start_s[rows], kind="stable")]
        starts = start_s[order]
        lo = np.searchsorted(starts, end_s[rows], side="left")
        hi = np.searchsorted(starts, end_s[rows] + window_s, side="right")
        hi = np.minimum(hi, lo + MAX_CANDIDATES_PER_END + 1)  # +1: the end itself may be in it
        counts = hi - lo
        i = np.repeat(rows, counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        j = order[np.repeat(lo, counts) + offsets]
        keep = i != j
        pieces_i.append(i[keep])
        pieces_j.append(j[keep])
    i = np.concatenate(pieces_i) if pieces_i else np.zeros(0, dtype=np.int64)
    j = np.concatenate(pieces_j) if pieces_j else np.zeros(0, dtype=np.int64)
    distance = np.linalg.norm(first_xy[j] - last_xy[i], axis=1) if len(i) else np.zeros(0)
    sim = pair_cosines(descriptor, i, j)
    return CandidatePairs(
        i=i.astype(np.int64),
        j=j.astype(np.int64),
        gap_s=start_s[j] - end_s[i],
        distance_px=distance,
        sim=sim.astype(np.float64),
    )


def fit_cues(pairs: CandidatePairs, window_s: float = SEARCH_WINDOW_S) -> CueFit | None:
    """Fit the join / chance mixture to candidate pairs by EM; None if there are too few.

    Each track end has at most one successor among its candidates, or none: the E-step shares
    one unit of belief per end between "none" and its candidates, in proportion to their
    likelihood ratios. That keeps the two components from trading places. It starts from each
    end's nearest start in time and place as the likely join and lets the data move every
    parameter: nothing here is a property of one barn.
    """
    m = len(pairs.i)
    if m < MIN_PAIRS:
        return None
    log_g = np.log(np.maximum(pairs.gap_s, MIN_GAP_S))
    known = np.isfinite(pairs.distance_px)
    d = np.where(known, pairs.distance_px, 0.0)
    rank = _rank_within(pairs.i, log_g) + _rank_within(pairs.i, np.where(known, d, np.inf))
    r = np.full(m, 0.02)
    r[_first_of_group(pairs.i, rank)] = 0.8
    ends, end_of = np.unique(pairs.i, return_inverse=True)
    fit = PRIOR_FIT
    for _ in range(EM_ROUNDS):
        fit = _m_step(pairs, log_g, d, known, r, window_s, len(ends))
        ratio = fit.log_ratio(pairs.gap_s, pairs.distance_px, pairs.sim)
        updated = _share_per_end(ratio, end_of, len(ends), fit.join_share)
        converged = np.max(np.abs(updated - r)) < 1e-4
        r = updated
        if converged:
            break
    return _m_step(pairs, log_g, d, known, r, window_s, len(ends))


def _share_per_end(
    log_ratio: np.ndarray, end_of: np.ndarray, n_ends: int, join_share: float
) -> np.ndarray:
    """Return each pair's posterior of being its end's join (none, or one of its candidates)."""
    score = np.log(join_share) + log_ratio
    top = np.full(n_ends, np.log(1.0 - join_share))
    np.maximum.at(top, end_of, score)
    total = np.exp(np.log(1.0 - join_share) - top)
    np.add.at(total, end_of, np.exp(score - top[end_of]))
    return np.asarray(np.exp(score - top[end_of]) / total[end_of])


def _m_step(
    pairs: CandidatePairs,
    log_g: np.ndarray,
    d: np.ndarray,
    known: np.ndarray,
    r: np.ndarray,
    window_s: float,
    n_ends: int,
) -> CueFit:
    """Return the mixture's parameters given each pair's responsibility `r` of being a join."""
    w1, w0 = r, 1.0 - r
    gap_mean, gap_sd = _weighted_moments(log_g, w1)
    log_d = np.log1p(d)
    base, slope, place_sd = _weighted_line(log_g, log_d, w1 * known)
    far_mean, far_sd = _weighted_moments(log_d, w0 * known)
    same_mean, same_sd = _weighted_moments(pairs.sim, w1)
    other_mean, other_sd = _weighted_moments(pairs.sim, w0)
    share = float(np.clip(w1.sum() / n_ends, 1e-3, 1 - 1e-3))
    return CueFit(
        pairs=len(r),
        join_share=share,
        gap_log_mean=gap_mean,
        gap_log_sd=max(gap_sd, 0.05),
        place_base=base,
        place_per_log_gap=slope,
        place_sd=max(place_sd, 0.05),
        far_log_mean=far_mean,
        far_log_sd=max(far_sd, 0.05),
        same_sim_mean=same_mean,
        same_sim_sd=max(same_sd, 0.01),
        other_sim_mean=other_mean,
        other_sim_sd=max(other_sd, 0.01),
        window_s=window_s,
    )


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Return (intercept, slope >= 0, residual sd) of the weighted least-squares line y ~ x."""
    total = float(w.sum())
    if total <= 1e-9:
        return PRIOR_FIT.place_base, PRIOR_FIT.place_per_log_gap, PRIOR_FIT.place_sd
    xm = float((w * x).sum() / total)
    ym = float((w * y).sum() / total)
    var = float((w * (x - xm) ** 2).sum() / total)
    slope = float((w * (x - xm) * (y - ym)).sum() / total) / var if var > 1e-9 else 0.0
    slope = max(slope, 0.0)  # a longer loss never brings an animal back closer
    intercept = ym - slope * xm
    residual = y - intercept - slope * x
    return intercept, slope, float(np.sqrt((w * residual**2).sum() / total))


def _weighted_moments(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    total = float(w.sum())
    if total <= 1e-9:
        return float(np.mean(x)) if len(x) else 0.0, 1.0
    mean = float((w * x).sum() / total)
    return mean, float(np.sqrt((w * (x - mean) ** 2).sum() / total))


def _rank_within(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Return each value's rank (0 = smallest) among the values of its group."""
    order = np.lexsort((value, group))
    ranks = np.empty(len(group), dtype=np.int64)
    sorted_group = group[order]
    starts = np.searchsorted(sorted_group, sorted_group, side="left")
    ranks[order] = np.arange(len(group)) - starts
    return ranks


def _first_of_group(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Return the index of the smallest value in each group."""
    order = np.lexsort((value, group))
    sorted_group = group[order]
    head = np.ones(len(order), dtype=bool)
    head[1:] = sorted_group[1:] != sorted_group[:-1]
    return order[head]


def _log_normal_pdf(x: np.ndarray, mean: float, sd: float) -> np.ndarray:
    return np.asarray(-0.5 * ((x - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi))


def stitch(n: int, pairs: CandidatePairs, log_odds: np.ndarray) -> np.ndarray:
    """Return each tracklet's successor (or -1), all joins chosen at once.

    Maximises the summed log odds of the chosen joins, each end and start used at most once;
    a join with negative log odds is never worth taking. Solved as a minimum-weight full
    matching of a sparse (2n x 2n) graph: ends and "no predecessor" rows against starts and
    "no successor" columns.
    """
    successor = np.full(n, -1, dtype=np.int64)
    useful = log_odds > 0
    if n == 0 or not useful.any():
        return successor
    i, j, gain = pairs.i[useful], pairs.j[useful], log_odds[useful]
    # Only tracklets with a useful candidate take part; the rest have no successor anyway.
    ends, end_pos = np.unique(i, return_inverse=True)
    starts, start_pos = np.unique(j, return_inverse=True)
    ne, ns = len(ends), len(starts)
    # Weights must be positive for the solver; a join costs 1, the "no" options 1 + gain-max.
    top = float(gain.max())
    rows = np.concatenate([end_pos, np.arange(ne), ne + np.arange(ns), ne + start_pos])
    cols = np.concatenate([start_pos, ns + np.arange(ne), np.arange(ns), ns + end_pos])
    no_option = 1.0 + top / 2.0
    weights = np.concatenate(
        [1.0 + top - gain, np.full(ne, no_option), np.full(ns, no_option), np.full(len(i), 1.0)]
    )
    graph = sparse.csr_matrix((weights, (rows, cols)), shape=(ne + ns, ns + ne))
    matched_rows, matched_cols = min_weight_full_bipartite_matching(graph)
    for row, col in zip(matched_rows.tolist(), matched_cols.tolist(), strict=True):
        if row < ne and col < ns:
            successor[ends[row]] = starts[col]
    return successor


def chains(successor: np.ndarray, start_s: np.ndarray) -> np.ndarray:
    """Return a chain label per tracklet following successors; labels in order of chain start."""
    n = len(successor)
    has_predecessor = np.zeros(n, dtype=bool)
    has_predecessor[successor[successor >= 0]] = True
    labels = np.full(n, -1, dtype=np.int64)
    heads = np.flatnonzero(~has_predecessor)
    heads = heads[np.argsort(start_s[heads], kind="stable")]
    chain = 0
    for head in heads.tolist():
        node = head
        while node >= 0 and labels[node] < 0:
            labels[node] = chain
            node = int(successor[node])
        chain += 1
    # Tracklets of no length at one instant can point at each other; each such one is its own.
    for node in np.flatnonzero(labels < 0).tolist():
        labels[node] = chain
        chain += 1
    return labels


def fit_look(same: np.ndarray, other: np.ndarray) -> LookFit | None:
    """Fit chain-level appearance from genuine pairs (the two halves of a chain) and impostor
    pairs (chains seen at the same time in one pen); None with fewer than MIN_PAIRS of either."""
    if len(same) < MIN_PAIRS or len(other) < MIN_PAIRS:
        return None
    return LookFit(
        same_mean=float(np.median(same)),
        same_sd=max(_robust_sd(same), 0.01),
        other_mean=float(np.median(other)),
        other_sd=max(_robust_sd(other), 0.01),
    )


def _robust_sd(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


@dataclass(frozen=True)
class ChainEnds:
    """One pen-day's chains as the head-count pass sees them; arrays of shape (k,)."""

    start_s: np.ndarray
    end_s: np.ndarray
    first_camera: np.ndarray  # camera key of the chain's first tracklet (object)
    last_camera: np.ndarray
    first_xy: np.ndarray  # (k, 2)
    last_xy: np.ndarray
    descriptor: np.ndarray  # (k, d) weighted centroid, unit length
    first_row: np.ndarray  # (k,) the chain's first tracklet
    last_row: np.ndarray  # (k,) the chain's last tracklet


def chain_ends(
    label: np.ndarray,
    camera: np.ndarray,
    start_s: np.ndarray,
    end_s: np.ndarray,
    first_xy: np.ndarray,
    last_xy: np.ndarray,
    descriptor: np.ndarray,
    weight: np.ndarray,
) -> ChainEnds:
    """Return each chain's first and last tracklet's time, camera and place, and its look."""
    k = int(label.max()) + 1 if len(label) else 0
    first = np.full(k, -1, dtype=np.int64)
    last = np.full(k, -1, dtype=np.int64)
    for row in np.argsort(start_s, kind="stable").tolist():
        c = int(label[row])
        if first[c] < 0:
            first[c] = row
        if last[c] < 0 or end_s[row] >= end_s[last[c]]:
            last[c] = row
    summed = np.zeros((k, descriptor.shape[1]))
    np.add.at(summed, label, descriptor.astype(np.float64) * weight[:, None])
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return ChainEnds(
        start_s=start_s[first],
        end_s=end_s[last],
        first_camera=camera[first],
        last_camera=camera[last],
        first_xy=first_xy[first],
        last_xy=last_xy[last],
        descriptor=(summed / np.where(norms > 0, norms, 1.0)).astype(np.float32),
        first_row=first,
        last_row=last,
    )


def cover_with_head_count(
    ends: ChainEnds, fits: dict[str, CueFit], pooled: CueFit, look: LookFit
) -> np.ndarray:
    """Return each chain's successor chain (or -1) so that the day has as few chains as the
    head count allows, joined where the cues make it most likely.

    The pen holds its animals all day: a chain that ends mid-day is an animal the tracker lost,
    and it is found again later. So every chain end takes a later start if one is free (the
    minimum number of chains left, by Dilworth, is the most chains ever running at once: the
    head count), and among such covers the one with the greatest summed log odds of gap, place
    (on the same camera) and look is chosen.
    """
    k = len(ends.start_s)
    i, j, odds = _chain_pair_odds(ends, fits, pooled, look)
    if len(i) == 0:
        return np.full(k, -1, dtype=np.int64)
    return _stitch_most_joins(k, i, j, odds)


def cover_tracklets(
    n: int,
    pairs: CandidatePairs,
    pair_odds: np.ndarray,
    ends: ChainEnds,
    fits: dict[str, CueFit],
    pooled: CueFit,
    look: LookFit,
) -> np.ndarray:
    """Return each tracklet's successor (or -1) in a cover of the day with as few chains as
    the tracklets allow, most likely first.

    As `cover_with_head_count`, but the cover is taken over tracklets: its joins are the
    first pass's candidate pairs (any of them, so a wrong join of the first pass can be routed
    around) and every first-pass chain's end to every later chain's start. A wrong first-pass
    join can make a chain (one animal, then another) run beside a chain of the first animal;
    chains alone could then never be covered by as many as the pen's head count.
    """
    i, j, odds = _chain_pair_odds(ends, fits, pooled, look)
    u = np.concatenate([pairs.i, ends.last_row[i]])
    v = np.concatenate([pairs.j, ends.first_row[j]])
    gain = np.concatenate([pair_odds, odds])
    if len(u) == 0:
        return np.full(n, -1, dtype=np.int64)
    # One edge per (end, start): the best of its tracklet and chain odds.
    order = np.lexsort((-gain, v, u))
    u, v, gain = u[order], v[order], gain[order]
    first = np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])]
    u, v, gain = u[first], v[first], gain[first]
    return _stitch_most_joins(n, u, v, gain)


def _chain_pair_odds(
    ends: ChainEnds, fits: dict[str, CueFit], pooled: CueFit, look: LookFit
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return every (chain, later chain) pair and its log odds of gap, place and look."""
    i, j = _later_chains(ends.start_s, ends.end_s, MAX_CHAIN_CANDIDATES)
    gap = ends.start_s[j] - ends.end_s[i]
    same_camera = ends.last_camera[i] == ends.first_camera[j]
    distance = np.where(
        same_camera, np.linalg.norm(ends.first_xy[j] - ends.last_xy[i], axis=1), np.nan
    )
    sim = pair_cosines(ends.descriptor, i, j)
    odds = np.zeros(len(i))
    for key in sorted(set(ends.last_camera[i].tolist())):
        mine = ends.last_camera[i] == key
        fit = fits.get(key, pooled)
        # Gap and place from the camera's join model; look at the chain level.
        odds[mine] = fit.gap_place_ratio(gap[mine], distance[mine])
    odds += look.log_ratio(sim)
    return i, j, odds


def _later_chains(
    start_s: np.ndarray, end_s: np.ndarray, most: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return pairs (i, j) of chain j starting after chain i ends (or at that instant, j > i),
    at most `most` per i, the earliest starts first; in (i, j) order."""
    k = len(start_s)
    order = np.lexsort((np.arange(k), start_s))
    starts = start_s[order]
    lo = np.searchsorted(starts, end_s, side="left")
    # Starts at the very instant of the end count only for a later chain: skip the rest.
    hi = np.minimum(np.searchsorted(starts, end_s, side="right") + most, k)
    counts = hi - lo
    i = np.repeat(np.arange(k), counts)
    j = order[
        np.repeat(lo, counts)
        + np.arange(int(counts.sum()))
        - np.repeat(np.cumsum(counts) - counts, counts)
    ]
    keep = (start_s[j] > end_s[i]) | ((start_s[j] == end_s[i]) & (j > i))
    i, j = i[keep], j[keep]
    first = np.lexsort((j, i))
    return i[first].astype(np.int64), j[first].astype(np.int64)


def _count_first(odds: np.ndarray, factor: float) -> np.ndarray:
    """Return gains that make every join beat leaving an end open, by the same amount
    (`factor` times the odds' spread): with a factor of the number of nodes, the matching
    takes the most joins first and the likeliest of them second."""
    if len(odds) == 0:
        return odds
    spread = float(odds.max() - odds.min()) + 1.0
    return np.asarray(odds - odds.min() + 1.0 + spread * factor)


MAX_COVER_FACTOR = 8.0  # 2 then 8: two tries at most


def _stitch_most_joins(n: int, i: np.ndarray, j: np.ndarray, odds: np.ndarray) -> np.ndarray:
    """Return each node's successor (or -1) in the matching with the most joins and, among
    those, the greatest summed odds.

    The exact offset (`nodes` times the odds' spread) makes the solver's costs span a range
    so wide that it crawls on a crowded day (8 s for 3,000 one-sample tracklets against
    0.1 s with a small one). So the offset starts small and grows fourfold until the matching
    has as many joins as the most possible (Hopcroft-Karp on the same pairs, fast): a
    matching with the most joins that maximises odds plus a constant per join maximises the
    odds among those with the most joins, so the answer is the exact one. Real pen-days reach
    the most at the first factor (simulated 12- and 40-pig pens: 2); the growth stops at
    MAX_COVER_FACTOR, a bound on the time of a crowded day (a crafted one of random
    one-sample tracklets), whose cover may then hold a few more chains than the fewest."""
    if len(i) == 0:
        return np.full(n, -1, dtype=np.int64)
    pairs = _pairs(i, j)
    graph = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    most = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
    factor = 2.0
    while True:
        successor = stitch(n, pairs, _count_first(odds, min(factor, n)))
        if int((successor >= 0).sum()) >= most or factor >= min(n, MAX_COVER_FACTOR):
            return successor
        factor *= 4


def _pairs(i: np.ndarray, j: np.ndarray) -> CandidatePairs:
    empty = np.zeros(len(i))
    return CandidatePairs(i=i, j=j, gap_s=empty, distance_px=empty, sim=empty)


@dataclass(frozen=True)
class DayTracks:
    """One pen-day's tracklets as the swap repair sees them; arrays of shape (n,)."""

    start_s: np.ndarray
    end_s: np.ndarray
    camera: np.ndarray  # camera key (object)
    first_xy: np.ndarray  # (n, 2)
    last_xy: np.ndarray
    descriptor: np.ndarray  # (n, d) unit looks (in the learned metric when there is one)
    weight: np.ndarray


# Rounds of tail swaps a pen-day gets at most. Simulated 40-pig pen-days (1,100-1,200
# tracklets) settle in 2-4; a crafted day of random one-sample tracklets took ~1,000 rounds
# of a whole-day pass each (44 s for 1,000 tracklets) before this bound.
MAX_SWAP_ROUNDS = 16


def repair_swaps(
    label: np.ndarray,
    tracks: DayTracks,
    fits: dict[str, CueFit],
    pooled: CueFit,
    look: LookFit,
) -> np.ndarray:
    """Return the chain labels with crossed tails undone where the whole day says so.

    Where two animals meet, the tracker loses both and the joins may cross: one chain goes on
    as the other animal. A join is judged on one gap, one place and two tracklets; the day
    has the chains' looks before and after. For two joins u->v and u'->v' at about the same
    time (each crossed join within the search window), swapping the tails gains the change in
    the joins' gap and place ratios plus the change in the look ratio of each chain's part
    before against its part after. Each round takes the positive swaps best first, one per
    chain (the others' gains are stale once a chain changed), until none gains.
    """
    label = label.copy()
    if len(label) == 0:
        return label
    window = pooled.window_s
    for _ in range(MAX_SWAP_ROUNDS):
        swaps = _best_swaps(label, tracks, fits, pooled, look, window)
        if not swaps:
            break
        for chain_a, cut_a, chain_b, cut_b in swaps:
            tail_a = (label == chain_a) & (tracks.start_s >= cut_a)
            tail_b = (label == chain_b) & (tracks.start_s >= cut_b)
            label[tail_a] = chain_b
            label[tail_b] = chain_a
    return label


def _best_swaps(
    label: np.ndarray,
    tracks: DayTracks,
    fits: dict[str, CueFit],
    pooled: CueFit,
    look: LookFit,
    window: float,
) -> list[tuple[int, float, int, float]]:
    """Return (chain, tail start, chain, tail start) of the swaps that gain, best first, no
    chain in two of them."""
    order = np.lexsort((np.arange(len(label)), tracks.start_s, label))
    same_chain = label[order[1:]] == label[order[:-1]]
    u, v = order[:-1][same_chain], order[1:][same_chain]  # the joins, by chain and time
    if len(u) < 2:
        return []
    # Each chain's weighted look summed before each join, and over the whole chain.
    weighted = tracks.descriptor.astype(np.float64) * tracks.weight[:, None]
    k = int(label.max()) + 1
    total = np.zeros((k, weighted.shape[1]))
    np.add.at(total, label, weighted)
    running = np.cumsum(weighted[order], axis=0)
    chain_start = np.r_[0, np.flatnonzero(~same_chain) + 1]
    offset = np.zeros(len(order), dtype=np.int64)
    offset[chain_start] = chain_start
    offset = np.maximum.accumulate(offset)
    before_all = running - np.where((offset > 0)[:, None], running[np.maximum(offset - 1, 0)], 0.0)
    before = before_all[:-1][same_chain]  # chain's look up to and including u
    chain = label[u]
    # Candidate pairs of joins: other chains, each crossed join forward in time and in window.
    a, b = _rival_joins(chain, tracks.end_s[u], tracks.start_s[v], window, MAX_CHAIN_CANDIDATES)
    if len(a) == 0:
        return []
    kept = join_ratio(u[a], v[a], tracks, fits, pooled) + join_ratio(
        u[b], v[b], tracks, fits, pooled
    )
    crossed = join_ratio(u[a], v[b], tracks, fits, pooled) + join_ratio(
        u[b], v[a], tracks, fits, pooled
    )
    # Each join's look before and after it, unit length, once per join (not per rival pair:
    # a crowded day has dozens of rivals per join).
    head = normalise(before)
    tail = normalise(total[chain] - before)
    kept_look = look.log_ratio(np.einsum("nd,nd->n", head, tail))
    look_kept = kept_look[a] + kept_look[b]
    # The rival pairs gather two looks each (a flood's million pairs: GBs of float64 moved),
    # so they are scored in float32; a cosine needs no more.
    head32, tail32 = head.astype(np.float32), tail.astype(np.float32)
    look_crossed = look.log_ratio(pair_dots(head32, a, tail32, b)) + look.log_ratio(
        pair_dots(head32, b, tail32, a)
    )
    gain = crossed - kept + look_crossed - look_kept
    swaps: list[tuple[int, float, int, float]] = []
    touched: set[int] = set()
    for pair in np.argsort(-gain, kind="stable").tolist():
        if gain[pair] <= 1e-9:
            break
        chain_a, chain_b = int(chain[a[pair]]), int(chain[b[pair]])
        if chain_a in touched or chain_b in touched:
            continue
        touched |= {chain_a, chain_b}
        swaps.append(
            (chain_a, float(tracks.start_s[v[a[pair]]]), chain_b, float(tracks.start_s[v[b[pair]]]))
        )
    return swaps


def _rival_joins(
    chain: np.ndarray, end_s: np.ndarray, start_s: np.ndarray, window: float, most: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return pairs (a, b) of joins (end_s[a] -> start_s[a]) of chains a < b whose crossed
    joins both go forward in time within the window, in (a, b) order; per a, at most `most`
    rivals, those ending nearest before a's start (memory linear in the joins)."""
    m = len(chain)
    order = np.lexsort((np.arange(m), end_s))
    ends = end_s[order]
    # b's end lies in [a's start - window, a's start): its crossed join u_b -> v_a is forward.
    hi = np.searchsorted(ends, start_s, side="left")
    lo = np.maximum(np.searchsorted(ends, start_s - window, side="left"), hi - most)
    counts = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(m), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    b = order[np.repeat(lo, counts) + offsets]
    keep = (chain[a] < chain[b]) & (start_s[b] > end_s[a]) & (start_s[b] - end_s[a] <= window)
    a, b = a[keep], b[keep]
    first = np.lexsort((b, a))
    return a[first].astype(np.int64), b[first].astype(np.int64)


def join_ratio(
    u: np.ndarray, v: np.ndarray, tracks: DayTracks, fits: dict[str, CueFit], pooled: CueFit
) -> np.ndarray:
    """Return the gap and place log ratio of joining tracklet u to tracklet v."""
    gap = tracks.start_s[v] - tracks.end_s[u]
    same_camera = tracks.camera[u] == tracks.camera[v]
    distance = np.where(
        same_camera, np.linalg.norm(tracks.first_xy[v] - tracks.last_xy[u], axis=1), np.nan
    )
    out = np.zeros(len(u))
    for key in sorted(set(tracks.camera[u].tolist())):
        mine = tracks.camera[u] == key
        out[mine] = fits.get(key, pooled).gap_place_ratio(gap[mine], distance[mine])
    return out
