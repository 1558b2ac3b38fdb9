"""Twins: one animal tracked at once by two cameras whose views overlap.

A tracklet on camera B is a twin of one on camera A (a registered pair) when most of the
shorter one's time lies within the longer one and their looks agree; the shorter is the
twin, the longer its host. Linking takes twins out before it solves (so "seen together
means different animals" holds again among what is left) and gives each its host's animal.

"Looks agree" is learned from the pen-day itself: tracklets running at the same time on
one camera are certainly different animals, so their similarities are what chance gives.
A two-component Gaussian mixture is fitted by EM over each candidate twin's best-host
similarity, the chance component fixed to those same-camera pairs; a pair is a twin when
its similarity is more likely of the other component (posterior > 0.5).
"""

from __future__ import annotations

from collections.abc import Callable, Set

import numpy as np

from herdrecord.linking.assignment import PenDayTracklets, centre_by_camera

CONTAINED = 0.5  # share of the shorter tracklet's time that must lie within the longer one
EM_ROUNDS = 30
MIN_CHANCE_PAIRS = 5  # fewer same-camera concurrent pairs: no chance to compare with


def find_twins(
    t: PenDayTracklets,
    pairs: Set[frozenset[str]],
    eligible: np.ndarray | None = None,
    look: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Return, for each tracklet of one pen-day, the row of its host, or -1 when it is none's
    twin. `pairs` are the pen's cameras with overlapping views; `eligible` (bool, n) says
    which tracklets may be twins (all when None; a host need not be eligible); `look` maps
    the camera-centred descriptors into a learned space (as they are when None)."""
    n = len(t.start_s)
    host = np.full(n, -1, dtype=np.int64)
    if n < 2 or not pairs:
        return host
    candidates = _candidates(t, pairs, np.ones(n, bool) if eligible is None else eligible)
    if not candidates:
        return host
    x = centre_by_camera(t).descriptor
    x = (x if look is None else look(x)).astype(np.float64)
    twin_rows = np.array([c[0] for c in candidates])
    host_rows = np.array([c[1] for c in candidates])
    sims = np.einsum("nd,nd->n", x[twin_rows], x[host_rows])
    chance = _same_camera_concurrent(t, x)
    if len(chance) < MIN_CHANCE_PAIRS:
        return host
    best = np.full(n, -np.inf)
    np.maximum.at(best, twin_rows, sims)
    posterior = _twin_posterior(best[np.isfinite(best)], sims, chance)
    twins_of: dict[int, list[int]] = {}  # host row: its twins
    for k in np.argsort(-sims, kind="stable"):
        if posterior[k] <= 0.5:
            break  # sorted by similarity: every pair after is less alike
        twin, of = int(twin_rows[k]), int(host_rows[k])
        of = of if host[of] < 0 else int(host[of])  # a twin's twin: the same host
        if host[twin] >= 0 or twin in twins_of or of == twin:
            continue  # a twin has one host, and a host is no twin
        seen = [of, *twins_of.get(of, [])]
        if any(t.camera[m] == t.camera[twin] and _overlap(t, twin, m) > 0 for m in seen):
            continue  # one animal is not twice on one camera at once
        host[twin] = of
        twins_of.setdefault(of, []).append(twin)
    return host


def _candidates(
    t: PenDayTracklets, pairs: Set[frozenset[str]], eligible: np.ndarray
) -> list[tuple[int, int]]:
    """Return (twin, host) rows: on paired cameras, the shorter mostly within the longer."""
    s, e = t.start_s, t.end_s
    together = np.triu((s[:, None] <= e[None, :]) & (s[None, :] <= e[:, None]), k=1)
    duration = e - s
    out = []
    for i, j in zip(*np.nonzero(together), strict=True):
        if frozenset((str(t.camera[i]), str(t.camera[j]))) not in pairs:
            continue
        short, long_ = (int(j), int(i)) if duration[j] < duration[i] else (int(i), int(j))
        if _contained(t, short, long_) < CONTAINED:
            continue
        if eligible[short]:
            out.append((short, long_))
        elif eligible[long_]:  # the shorter must be solved (a tag read): the longer goes
            out.append((long_, short))
    return out


def _contained(t: PenDayTracklets, short: int, long_: int) -> float:
    """Return the share of `short`'s time within `long_` (1 or 0 for an instant)."""
    span = float(t.end_s[short] - t.start_s[short])
    if span <= 0:
        inside = t.start_s[long_] <= t.start_s[short] <= t.end_s[long_]
        return 1.0 if inside else 0.0
    return _overlap(t, short, long_) / span


def _overlap(t: PenDayTracklets, i: int, j: int) -> float:
    return float(max(0.0, min(t.end_s[i], t.end_s[j]) - max(t.start_s[i], t.start_s[j])))


def _same_camera_concurrent(t: PenDayTracklets, x: np.ndarray) -> np.ndarray:
    """Return the similarities of tracklets seen at the same time on one camera."""
    out: list[np.ndarray] = []
    for camera in np.unique(t.camera):
        rows = np.flatnonzero(t.camera == camera)
        s, e = t.start_s[rows], t.end_s[rows]
        together = np.triu((s[:, None] <= e[None, :]) & (s[None, :] <= e[:, None]), k=1)
        i, j = np.nonzero(together)
        if len(i):
            out.append(np.einsum("nd,nd->n", x[rows[i]], x[rows[j]]))
    return np.concatenate(out) if out else np.zeros(0)


def _twin_posterior(best: np.ndarray, sims: np.ndarray, chance: np.ndarray) -> np.ndarray:
    """Return, for each similarity in `sims`, the posterior that it is a twin's, under a
    mixture fitted by EM to the best-host similarities `best`: chance fixed to `chance`'s
    mean and spread, the twin component's mean, spread and share free."""
    mu0 = float(chance.mean())
    sd0 = max(float(chance.std()), 1e-3)
    floor = sd0 / 4  # the twin component may not collapse onto one pair
    mu1 = float(max(best.max(), mu0 + sd0))
    sd1 = max(float(best.std()), floor)
    share = 0.5
    for _ in range(EM_ROUNDS):
        p = _responsibility(best, mu0, sd0, mu1, sd1, share)
        weight = p.sum()
        if weight < 1e-9:
            return np.zeros(len(sims))
        share = float(np.clip(weight / len(best), 1e-3, 1 - 1e-3))
        mu1 = float((p * best).sum() / weight)
        sd1 = max(float(np.sqrt((p * (best - mu1) ** 2).sum() / weight)), floor)
    if mu1 <= mu0 + sd0:
        return np.zeros(len(sims))  # no component apart from chance: no twins to find
    posterior = _responsibility(sims, mu0, sd0, mu1, sd1, share)
    return np.where(sims > mu0, posterior, 0.0)


def _responsibility(
    s: np.ndarray, mu0: float, sd0: float, mu1: float, sd1: float, share: float
) -> np.ndarray:
    """Return the posterior of the twin component for each value of `s`."""
    log0 = np.log(1 - share) - np.log(sd0) - 0.5 * ((s - mu0) / sd0) ** 2
    log1 = np.log(share) - np.log(sd1) - 0.5 * ((s - mu1) / sd1) ** 2
    return np.asarray(1.0 / (1.0 + np.exp(np.clip(log0 - log1, -700, 700))))
