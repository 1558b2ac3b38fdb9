"""Untangle a pen-day's chains where several animals were lost at once: re-deal their tails.

In a crowded pen the tracker loses many animals at about the same time (a huddle, a rush to
the feeder), and the joins that pick them up again can be dealt to the wrong chains: not
only two crossed joins (`stitching.repair_swaps`), but three or more chains whose animals
went round. At any moment between tracklets, the chains then in a gap can take each other's
tails in any order without two tracklets of one chain overlapping. So one sweep of the day,
in time order, stops just before each tail begins and solves which head goes on with which
tail (a Hungarian over the chains in a gap): the gain of a pairing is the gap and place
ratio of its join plus the look ratio of the head's whole look against the tail's. A head
holds every tracklet of its chain so far, a tail every tracklet still to come, so one stray
tracklet look weighs little against a day's evidence; the sweep repeats while it changes
anything, and costs O(joins x chains in a gap^2) a sweep, with memory linear in the day.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from herdrecord.linking.stitching import CueFit, DayTracks, LookFit, join_ratio

MAX_SWEEPS = 6  # a bound on work: on simulated 40-pig pens the sweeps settle within 3-4
MAX_IN_GAP = 64  # chains re-dealt at one cut at most (the shortest gaps first); a bound on work
# Deals solved per pen-day at most, over all sweeps: a bound on time (~1 ms each). A 40-pig
# pen-day needs ~1,100 a sweep; a day of tens of thousands of tracklets gets part of one.
MAX_DEALS = 12_000


def untangle_tails(
    label: np.ndarray,
    tracks: DayTracks,
    fits: dict[str, CueFit],
    pooled: CueFit,
    look: LookFit,
) -> np.ndarray:
    """Return the chain labels with tails re-dealt among chains in a gap where the day's
    looks and the joins' gaps and places say so (sweeps until nothing changes)."""
    label = np.asarray(label, dtype=np.int64).copy()
    if len(label) < 3:
        return label
    budget = MAX_DEALS
    for _ in range(MAX_SWEEPS):
        label, changed, budget = _sweep(label, tracks, fits, pooled, look, budget)
        if not changed or budget <= 0:
            break
    return label


def _sweep(
    base: np.ndarray,
    tracks: DayTracks,
    fits: dict[str, CueFit],
    pooled: CueFit,
    look: LookFit,
    budget: int,
) -> tuple[np.ndarray, bool, int]:
    """Return the labels after one sweep of the day (at most `budget` deals solved), whether
    any tail moved, and the budget left."""
    n = len(base)
    k = int(base.max()) + 1
    x = tracks.descriptor.astype(np.float64) * tracks.weight[:, None]
    # Each chain's tracklets in time order; its joins are consecutive members.
    by_chain = np.lexsort((np.arange(n), tracks.start_s, base))
    joined = base[by_chain[1:]] == base[by_chain[:-1]]
    join_u, join_v = by_chain[:-1][joined], by_chain[1:][joined]
    if len(join_u) < 2:
        return base, False, budget
    segment_total = np.zeros((k, x.shape[1]))
    np.add.at(segment_total, base, x)
    segment_passed = np.zeros_like(segment_total)
    head = np.zeros_like(segment_total)
    owner = np.arange(k)  # the chain that the rest of each base chain now belongs to
    tail_of = np.arange(k)  # the base chain whose rest each chain now goes on with
    label = base.copy()
    by_start = np.lexsort((np.arange(n), tracks.start_s))
    passed = 0
    joins_by_end = np.lexsort((join_v, tracks.end_s[join_u]))
    opened = 0
    # The join each chain is in the gap of: tracklet ended (u) -> tracklet to come (v).
    in_gap: dict[int, tuple[int, int]] = {}
    changed = False
    # A chain in a gap neither gains head nor loses tail, so the deal among the chains in a gap
    # can change only when one more enters: the rest of the cuts are skipped (exactly: a better
    # deal of fewer chains would be a better deal of the set they were part of).
    entered = False
    cuts = np.unique(tracks.start_s[join_v])
    for cut in cuts.tolist():
        # Tracklets that start before the cut are the heads' now: their chain is settled.
        while passed < n and tracks.start_s[by_start[passed]] < cut:
            r = int(by_start[passed])
            chain = int(owner[base[r]])
            label[r] = chain
            head[chain] += x[r]
            segment_passed[base[r]] += x[r]
            passed += 1
        # Gaps open when their end has passed, and close once their start is not ahead.
        while opened < len(joins_by_end) and tracks.end_s[join_u[joins_by_end[opened]]] < cut:
            e = int(joins_by_end[opened])
            u, v = int(join_u[e]), int(join_v[e])
            if tracks.start_s[v] >= cut:
                in_gap[int(owner[base[v]])] = (u, v)
                entered = True
            opened += 1
        for chain in [c for c, (_, v) in in_gap.items() if tracks.start_s[v] < cut]:
            del in_gap[chain]
        if len(in_gap) < 2 or not entered or budget <= 0:
            continue
        entered = False
        budget -= 1
        chains = sorted(in_gap, key=lambda c: (tracks.start_s[in_gap[c][1]], c))[:MAX_IN_GAP]
        permutation = _best_deal(chains, in_gap, head, segment_total, segment_passed, tail_of,
                                 tracks, fits, pooled, look)  # fmt: skip
        if permutation is None:
            continue
        changed = True
        old_tails = [int(tail_of[c]) for c in chains]
        old_joins = [in_gap[c] for c in chains]
        for position, chain in enumerate(chains):
            taken = int(permutation[position])
            tail_of[chain] = old_tails[taken]
            owner[old_tails[taken]] = chain
            in_gap[chain] = (old_joins[position][0], old_joins[taken][1])
    while passed < n:
        r = int(by_start[passed])
        label[r] = int(owner[base[r]])
        passed += 1
    return label, changed, budget


def _best_deal(
    chains: list[int],
    in_gap: dict[int, tuple[int, int]],
    head: np.ndarray,
    segment_total: np.ndarray,
    segment_passed: np.ndarray,
    tail_of: np.ndarray,
    tracks: DayTracks,
    fits: dict[str, CueFit],
    pooled: CueFit,
    look: LookFit,
) -> np.ndarray | None:
    """Return which tail each chain in a gap should take (positions into `chains`), or None
    when the present deal is already the best."""
    m = len(chains)
    heads = head[chains]
    tails = np.stack([segment_total[tail_of[c]] - segment_passed[tail_of[c]] for c in chains])
    cosine = _unit(heads) @ _unit(tails).T
    gain = look.log_ratio(cosine)
    ends = np.array([in_gap[c][0] for c in chains])
    starts = np.array([in_gap[c][1] for c in chains])
    gain = gain + join_ratio(np.repeat(ends, m), np.tile(starts, m), tracks, fits, pooled).reshape(
        m, m
    )
    rows, cols = linear_sum_assignment(-gain)
    if np.array_equal(cols, np.arange(m)):
        return None
    if gain[rows, cols].sum() - np.trace(gain) <= 1e-9:
        return None
    return np.asarray(cols)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norms > 0, norms, 1.0))
