"""A metric learned from the record's own constraints: what tells these animals apart.

A frozen foundation embedding spends most of its dimensions on posture, light, camera and
pose; only a small part of it tells one pig from another. The record itself says which part:
the two sides of a confident join are one animal (so are two tracklets with the same tag
read, and tracklets people gave one animal), and two tracklets seen at the same moment in one
pen are two animals. Their differences give the within-animal and the between-animal
covariance; the generalised eigenvectors of the pair (Fisher's discriminant, applied to
equivalence constraints as in KISSME, Koestinger et al. 2012) whiten what varies within an
animal and keep what varies between them. No label is needed: this is the few-shot adaptation
of the embedder to one barn.

The pair statistics accumulate across runs in a side file; each run refits, checks the fit on
the pairs of pen-days it held back (ROC AUC of same against different, raw cosine against the
learned one) and keeps the learned metric only where it separates better.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import linalg

from herdrecord.linking.intervals import overlapping_pairs
from herdrecord.reid.vectors import normalise
from herdrecord.store.record import Record

METRIC_FILE = "link_metric.npz"
META_METRIC = "link_metric"
MIN_PAIRS = 200  # pairs of each kind before a metric is fitted at all
# The metric is refitted once the record holds this share more pairs than it was fitted on
# (so refits come at 1, 1.25, 1.56... times the pairs: a few dozen over a year of days).
REFIT_GROWTH = 0.25
HOLD_BACK_EVERY = 4  # every 4th pen-day's pairs check the fit
MAX_PAIRS_PER_RUN = 20_000  # of each kind; beyond it an even subsample (d = 384 needs far fewer)
# Different pairs taken from one pen-day at most (evenly spaced): a bound on memory, far above
# what a pen-day of a few thousand tracklets gives.
MAX_PAIRS_PER_PEN_DAY = 200_000


@dataclass(frozen=True)
class PairIndex:
    """Pairs of rows of one descriptor array: same animal, and different animals."""

    same_i: np.ndarray
    same_j: np.ndarray
    different_i: np.ndarray
    different_j: np.ndarray
    held_back_same: np.ndarray  # bool per same pair: from a held-back pen-day
    held_back_different: np.ndarray


@dataclass
class PairStats:
    """Running second moments of pair differences (d, d), with what shrinkage needs."""

    same: np.ndarray
    different: np.ndarray
    n_same: int
    n_different: int
    fourth_same: float  # sum of |z|^4 over same-pair differences (Ledoit-Wolf)
    fourth_different: float

    @classmethod
    def empty(cls, dim: int) -> PairStats:
        """Return statistics of no pairs."""
        zero = np.zeros((dim, dim))
        return cls(zero, zero.copy(), 0, 0, 0.0, 0.0)

    def add(self, x: np.ndarray, pairs: PairIndex, held_back: bool | None = None) -> None:
        """Add the pairs (all, or only those held back / not held back) of descriptors x."""
        keep_s = np.ones(len(pairs.same_i), bool)
        keep_d = np.ones(len(pairs.different_i), bool)
        if held_back is not None:
            keep_s = pairs.held_back_same == held_back
            keep_d = pairs.held_back_different == held_back
        zs = x[pairs.same_i[keep_s]].astype(np.float64) - x[pairs.same_j[keep_s]]
        zd = x[pairs.different_i[keep_d]].astype(np.float64) - x[pairs.different_j[keep_d]]
        self.same += zs.T @ zs
        self.different += zd.T @ zd
        self.n_same += len(zs)
        self.n_different += len(zd)
        self.fourth_same += float((np.einsum("nd,nd->n", zs, zs) ** 2).sum())
        self.fourth_different += float((np.einsum("nd,nd->n", zd, zd) ** 2).sum())


@dataclass(frozen=True)
class Metric:
    """A learned projection of descriptors; `transform` (d, k), y = normalise(x @ transform)."""

    version: int
    transform: np.ndarray
    same_pairs: int
    different_pairs: int
    fitted_at: str
    auc_raw: float  # held-back pairs, raw cosine
    auc_learned: float  # held-back pairs, learned cosine

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Return the descriptors (n, d) in the learned space, unit length, float32."""
        return np.asarray(normalise(x.astype(np.float64) @ self.transform), dtype=np.float32)

    def describe(self) -> str:
        """Return one line saying what was learned."""
        return (
            f"metric v{self.version} ({self.transform.shape[1]} of {self.transform.shape[0]} "
            f"dimensions) from {self.same_pairs:,} same / {self.different_pairs:,} different "
            f"pairs: held-back AUC {self.auc_raw:.3f} raw -> {self.auc_learned:.3f}"
        )


def shrunk(moment: np.ndarray, n: int, fourth: float) -> np.ndarray:
    """Return the covariance moment/n shrunk toward its mean variance (Ledoit-Wolf 2004)."""
    d = moment.shape[0]
    s = moment / n
    mu = float(np.trace(s)) / d
    target_gap = float(np.sum((s - mu * np.eye(d)) ** 2))
    spread = max((fourth - n * float(np.sum(s**2))) / n**2, 0.0)
    weight = min(spread / target_gap, 1.0) if target_gap > 0 else 1.0
    return np.asarray((1 - weight) * s + weight * mu * np.eye(d))


def fit_transform(stats: PairStats, shrinkage: float | None = None) -> np.ndarray:
    """Return the generalised eigenvectors (d, d) of between- against within-animal spread,
    most discriminative first; each unit within-animal variance. The within-animal spread is
    shrunk toward its mean variance by `shrinkage` (Ledoit-Wolf's estimate when None)."""
    if shrinkage is None:
        within = shrunk(stats.same, stats.n_same, stats.fourth_same)
    else:
        s = stats.same / stats.n_same
        mu = float(np.trace(s)) / len(s)
        within = (1 - shrinkage) * s + shrinkage * mu * np.eye(len(s))
    between = shrunk(stats.different, stats.n_different, stats.fourth_different)
    values, vectors = linalg.eigh(between, within, driver="gvd")  # divide and conquer: fastest
    return np.asarray(vectors[:, np.argsort(-values, kind="stable")])


# The settings tried on held-back pairs: how much to trust the within-animal spread, and how
# many of the most discriminative directions to keep (the rest mostly carry posture and noise).
SHRINKAGES: tuple[float | None, ...] = (None, 0.3, 0.6)
KEEP_FRACTIONS = (1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3, 1.0)


@dataclass(frozen=True)
class Setting:
    """One way of fitting the metric, and how well it separated the held-back pairs."""

    shrinkage: float | None
    keep: int  # directions kept
    auc: float


def choose_setting(stats: PairStats, x: np.ndarray, pairs: PairIndex) -> Setting:
    """Return the setting whose transform best separates the held-back pairs."""
    best = Setting(None, x.shape[1], -1.0)
    for shrinkage in SHRINKAGES:
        vectors = fit_transform(stats, shrinkage)
        for fraction in KEEP_FRACTIONS:
            keep = max(2, round(fraction * x.shape[1]))
            projected = normalise(x.astype(np.float64) @ vectors[:, :keep])
            auc = pair_auc(np.asarray(projected), pairs)
            if auc > best.auc:
                best = Setting(shrinkage, keep, auc)
    return best


def pair_auc(x: np.ndarray, pairs: PairIndex, held_back: bool = True) -> float:
    """Return ROC AUC of cosine similarity, same pairs against different, on held-back pairs."""
    s = pairs.held_back_same == held_back
    d = pairs.held_back_different == held_back
    same = np.einsum("nd,nd->n", x[pairs.same_i[s]], x[pairs.same_j[s]])
    different = np.einsum("nd,nd->n", x[pairs.different_i[d]], x[pairs.different_j[d]])
    if len(same) == 0 or len(different) == 0:
        return float("nan")
    ranks = average_ranks(np.concatenate([same, different]))
    return float((ranks[: len(same)].sum() - len(same) * (len(same) + 1) / 2)
                 / (len(same) * len(different)))  # fmt: skip


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Return the 1-based ranks of x (n,), ties given the mean of their ranks (as
    `scipy.stats.rankdata` does, without importing scipy.stats: half a second at start-up)."""
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # [0] when empty: no run
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


@dataclass(frozen=True)
class MetricFit:
    """The metric a linking run uses, and the statistics to keep when it was refitted."""

    metric: Metric | None
    stats: PairStats | None  # to save with it (None: nothing new to keep)


def learn_metric(record: Record, x: np.ndarray, pairs: PairIndex) -> MetricFit:
    """Return the record's metric refitted with this run's pairs of descriptors x (n, d), or
    the stored one when this run adds too little or the refit would not separate better
    (None while the record has too few pairs). Nothing is written here."""
    stored = stored_metric(record)
    stats = _read_stats(record, x.shape[1])
    if stored is not None and stored.transform.shape[0] == x.shape[1]:
        fitted_on = stored.same_pairs + stored.different_pairs
        adding = len(pairs.same_i) + len(pairs.different_i)
        if stats.n_same + stats.n_different + adding < (1 + REFIT_GROWTH) * fitted_on:
            # Too little new since the fit to move it: keep it, and keep the new pairs for
            # the next refit (choosing a setting is most of a day's link run on a big barn).
            stats.add(x, pairs)
            return MetricFit(stored, stats)
    trial = PairStats(
        stats.same.copy(),
        stats.different.copy(),
        stats.n_same,
        stats.n_different,
        stats.fourth_same,
        stats.fourth_different,
    )
    trial.add(x, pairs, held_back=False)
    held = int(pairs.held_back_same.sum()), int(pairs.held_back_different.sum())
    if min(trial.n_same, trial.n_different) < MIN_PAIRS or min(held) < MIN_PAIRS // 4:
        return MetricFit(stored, None)
    setting = choose_setting(trial, x, pairs)
    auc_raw = pair_auc(x, pairs)
    if not setting.auc > auc_raw:
        return MetricFit(stored, None)
    # The chosen setting, refitted on every pair (the held-back ones included).
    stats.add(x, pairs)
    transform = fit_transform(stats, setting.shrinkage)[:, : setting.keep]
    metric = Metric(
        version=(stored.version + 1) if stored else 1,
        transform=transform.astype(np.float32),
        same_pairs=stats.n_same,
        different_pairs=stats.n_different,
        fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
        auc_raw=round(auc_raw, 4),
        auc_learned=round(setting.auc, 4),
    )
    return MetricFit(metric, stats)


def constraint_pairs(
    pen_days: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[object], list[object]]],
) -> PairIndex:
    """Return the same/different pairs of a run's pen-days, indexed into their concatenation.

    Each pen-day is (chain label, start_s, end_s, tag per tracklet, answer per tracklet):
    consecutive tracklets of a chain, tracklets with one tag read and tracklets people gave
    one animal are the same animal; tracklets that overlap in time in one pen are not.
    Every `HOLD_BACK_EVERY`-th pen-day's pairs are held back to check the fit.
    """
    same: list[tuple[np.ndarray, np.ndarray, bool]] = []
    different: list[tuple[np.ndarray, np.ndarray, bool]] = []
    offset = 0
    for number, (label, start_s, end_s, tags, answers) in enumerate(pen_days):
        held = number % HOLD_BACK_EVERY == HOLD_BACK_EVERY - 1
        n = len(label)
        order = np.lexsort((start_s, label))
        joined = label[order][1:] == label[order][:-1]
        same.append((order[:-1][joined] + offset, order[1:][joined] + offset, held))
        for names in (tags, answers):
            by_name: dict[object, list[int]] = {}
            for row, name in enumerate(names):
                if name is not None:
                    by_name.setdefault(name, []).append(row)
            for rows in by_name.values():
                if len(rows) > 1:
                    r = np.array(rows)
                    same.append((r[:-1] + offset, r[1:] + offset, held))
        i, j = overlapping_pairs(start_s, end_s, MAX_PAIRS_PER_PEN_DAY)
        apart = label[i] != label[j]
        different.append((i[apart] + offset, j[apart] + offset, held))
        offset += n
    return _pair_index(same, different)


def _pair_index(
    same: list[tuple[np.ndarray, np.ndarray, bool]],
    different: list[tuple[np.ndarray, np.ndarray, bool]],
) -> PairIndex:
    def stack(parts: list[tuple[np.ndarray, np.ndarray, bool]]) -> tuple[np.ndarray, ...]:
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=bool)
        i = np.concatenate([p[0] for p in parts]).astype(np.int64)
        j = np.concatenate([p[1] for p in parts]).astype(np.int64)
        held = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
        if len(i) > MAX_PAIRS_PER_RUN:  # evenly spaced: the same pairs in every process
            keep = np.linspace(0, len(i) - 1, MAX_PAIRS_PER_RUN).astype(np.int64)
            i, j, held = i[keep], j[keep], held[keep]
        return i, j, held

    si, sj, sh = stack(same)
    di, dj, dh = stack(different)
    return PairIndex(si, sj, di, dj, sh, dh)


def stored_metric(record: Record) -> Metric | None:
    """Return the metric the record holds, if any."""
    info = record.metadata.get(META_METRIC)
    data = record.location.read(METRIC_FILE) if info else None
    if not info or data is None:
        return None
    with np.load(io.BytesIO(data)) as arrays:
        transform = arrays["transform"]
    return Metric(transform=transform, **info)


def _read_stats(record: Record, dim: int) -> PairStats:
    data = record.location.read(METRIC_FILE) if record.metadata.get(META_METRIC) else None
    if data is None:
        return PairStats.empty(dim)
    with np.load(io.BytesIO(data)) as a:
        return PairStats(
            a["same"], a["different"], int(a["n_same"]), int(a["n_different"]),
            float(a["fourth_same"]), float(a["fourth_different"]),
        )  # fmt: skip


def save_metric(record: Record, metric: Metric, stats: PairStats) -> None:
    """Keep the metric and its pair statistics in the record (the caller holds the lock)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        transform=metric.transform,
        same=stats.same,
        different=stats.different,
        n_same=stats.n_same,
        n_different=stats.n_different,
        fourth_same=stats.fourth_same,
        fourth_different=stats.fourth_different,
    )
    record.ensure_writer()
    record.location.write(METRIC_FILE, buffer.getvalue())
    info: dict[str, Any] = {
        "version": metric.version,
        "same_pairs": metric.same_pairs,
        "different_pairs": metric.different_pairs,
        "fitted_at": metric.fitted_at,
        "auc_raw": metric.auc_raw,
        "auc_learned": metric.auc_learned,
    }
    record.set_metadata(META_METRIC, info)
