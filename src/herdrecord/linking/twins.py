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

"Where they are" is learned too, where the paths of the tracklets are at hand: the views of
two cameras on one pen map one floor point to another, so the pairs that look alike give a
homography from one camera's pixels to the other's (RANSAC over them, since many are a wrong
host, then refitted on its inliers), and its residual spread. Each pair's observations then
add the log likelihood ratio of their residuals under that map (two Gaussians: the map's
spread, and the wider one of the share of a twin's observations it misses, as a bbox cut at
the frame's edge; both learned) against chance (a point anywhere in the part of the frame
animals were seen in), capped at ln 1000 as every cue of linking is; the odds of look and
place together decide. A twin of one observation, whose look alone cannot stand out from
chance, is then found by standing where its host stands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np

from herdrecord.linking.assignment import PenDayTracklets, centre_by_camera
from herdrecord.linking.tracklets import TrackPath
from herdrecord.store.record import Record

META_CAMERA_MAPS = "camera_maps"

CONTAINED = 0.5  # share of the shorter tracklet's time that must lie within the longer one
EM_ROUNDS = 30
MIN_CHANCE_PAIRS = 5  # fewer same-camera concurrent pairs: no chance to compare with
CONFIDENT = 0.9  # posterior of a pair the camera map is fitted from
MIN_MAP_PAIRS = 4  # fewer confident pairs on a camera pair: no map, positions unused
MIN_MAP_POINTS = 12
RANSAC_DRAWS = 1000
RANSAC_SCORED = 4000  # points a draw is scored on
RANSAC_TOLERANCE = 0.02  # of the frame's diagonal: an inlier of a draw
MAP_ROUNDS = 4  # trimmed refits of the camera map
MAX_SQUASH = 8.0  # a map shrinking one direction more than this times the other is none
MAP_PASSES = 2  # the map refitted from the pairs that look and place make confident
MIN_MISS_SHARE, MAX_MISS_SHARE = 0.01, 0.5  # of a twin's observations the map misses
MIN_SIGMA_PX = 0.5
MAX_CUE = float(np.log(1000.0))
SAME_MOMENT_S = 0.5  # an observation this close to a one-observation host's is simultaneous


MapKey = tuple[str, str]  # (camera, camera) of a registered pair, sorted


@dataclass(frozen=True)
class TwinCandidates:
    """One pen-day's possible (twin, host) pairs, with what says whether each is one."""

    t: PenDayTracklets
    twin_rows: np.ndarray
    host_rows: np.ndarray
    by_look: np.ndarray  # log odds of each pair from the look alone, capped at ln 1000
    looks_apart: np.ndarray  # bool: the look is above chance's mean
    sims: np.ndarray  # the similarity of each pair's looks (orders pairs of equal odds)
    look_odds: np.ndarray  # log odds by look, uncapped (where no place is known)
    points: list[np.ndarray | None]  # simultaneous places, oriented (first camera of key, second)
    key: list[MapKey]


def find_twins(
    t: PenDayTracklets,
    pairs: Set[frozenset[str]],
    eligible: np.ndarray | None = None,
    look: Callable[[np.ndarray], np.ndarray] | None = None,
    paths: Sequence[TrackPath | None] | None = None,
) -> np.ndarray:
    """Return, for each tracklet of one pen-day, the row of its host, or -1 when it is none's
    twin. `pairs` are the pen's cameras with overlapping views; `eligible` (bool, n) says
    which tracklets may be twins (all when None; a host need not be eligible); `look` maps
    the camera-centred descriptors into a learned space (as they are when None); `paths`
    (one per tracklet, None where unknown) lets where they were seen count too, under camera
    maps learned from this pen-day alone (`learn_camera_maps` pools days)."""
    found = twin_candidates(t, pairs, eligible, look, paths)
    if found is None:
        return np.full(len(t.start_s), -1, dtype=np.int64)
    return decide_twins(found, learn_camera_maps([found]) if paths is not None else {})


def twin_candidates(
    t: PenDayTracklets,
    pairs: Set[frozenset[str]],
    eligible: np.ndarray | None = None,
    look: Callable[[np.ndarray], np.ndarray] | None = None,
    paths: Sequence[TrackPath | None] | None = None,
) -> TwinCandidates | None:
    """Return the pen-day's possible twins and their odds by look, or None when there are
    none or the look has nothing to say (no chance to compare with, no component apart)."""
    n = len(t.start_s)
    if n < 2 or not pairs:
        return None
    candidates = _candidates(t, pairs, np.ones(n, bool) if eligible is None else eligible)
    if not candidates:
        return None
    x = centre_by_camera(t).descriptor
    x = (x if look is None else look(x)).astype(np.float64)
    twin_rows = np.array([c[0] for c in candidates])
    host_rows = np.array([c[1] for c in candidates])
    sims = np.einsum("nd,nd->n", x[twin_rows], x[host_rows])
    chance = _same_camera_concurrent(t, x)
    if len(chance) < MIN_CHANCE_PAIRS:
        return None
    best = np.full(n, -np.inf)
    np.maximum.at(best, twin_rows, sims)
    posterior = _twin_posterior(best[np.isfinite(best)], sims, chance)
    if posterior is None:
        return None
    key = [_map_key(t, w, h) for w, h in candidates]
    points: list[np.ndarray | None] = [None] * len(candidates)
    if paths is not None:
        for k, (w, h) in enumerate(candidates):
            p = _simultaneous(paths[h], paths[w])
            points[k] = None if p is None else _oriented(p, str(t.camera[h]) == key[k][0])
    return TwinCandidates(
        t=t,
        twin_rows=twin_rows,
        host_rows=host_rows,
        # The look's odds are capped as every cue's are: a look far from chance's narrow
        # spread is not certainty, and the place of the two may then outvote it.
        by_look=np.clip(_logit(posterior), -MAX_CUE, MAX_CUE),
        looks_apart=sims > float(chance.mean()),
        sims=sims,
        look_odds=_logit(posterior),
        points=points,
        key=key,
    )


def learn_camera_maps(
    found: Sequence[TwinCandidates], known: dict[MapKey, CameraMap] | None = None
) -> dict[MapKey, CameraMap]:
    """Return a map per camera pair, fitted to the pairs of all `found` pen-days that look
    alike (and, in a second pass, that look alike and stand where the first maps say); a
    pair with too few keeps its `known` map (from an earlier run), if any.

    A camera's view does not change from day to day, so the days are pooled: on a day whose
    looks are poor, the pairs that look alike are mostly a wrong host."""
    maps = dict(known or {})
    for _ in range(MAP_PASSES):
        groups: dict[MapKey, list[np.ndarray]] = {}
        for c in found:
            evidence, placed = _position_evidence(c, maps)
            confident = np.where(placed, c.by_look + evidence, c.by_look) > _logit(
                np.array(CONFIDENT)
            )
            for k in np.flatnonzero(confident):
                p = c.points[k]
                if p is not None:
                    groups.setdefault(c.key[k], []).append(p)
        for key, pooled in groups.items():
            fitted = _fit_map(pooled)
            if fitted is not None:
                maps[key] = fitted
    return maps


def decide_twins(found: TwinCandidates, maps: dict[MapKey, CameraMap]) -> np.ndarray:
    """Return, for each tracklet of the pen-day, its host's row or -1: the pairs taken in
    order of their odds (look and place together where a map and a shared moment say where
    both were, else the look alone), while the odds favour a twin."""
    t = found.t
    host = np.full(len(t.start_s), -1, dtype=np.int64)
    evidence, placed = _position_evidence(found, maps)
    by_look_alone = np.where(found.looks_apart, found.look_odds, -np.inf)
    log_odds = np.where(placed, found.by_look + evidence, by_look_alone)
    twins_of: dict[int, list[int]] = {}  # host row: its twins
    for k in np.lexsort((-found.sims, -log_odds)):
        if log_odds[k] <= 0.0:
            break  # sorted by odds: every pair after is less likely a twin
        twin, of = int(found.twin_rows[k]), int(found.host_rows[k])
        of = of if host[of] < 0 else int(host[of])  # a twin's twin: the same host
        if host[twin] >= 0 or twin in twins_of or of == twin:
            continue  # a twin has one host, and a host is no twin
        seen = [of, *twins_of.get(of, [])]
        if any(t.camera[m] == t.camera[twin] and _overlap(t, twin, m) > 0 for m in seen):
            continue  # one animal is not twice on one camera at once
        host[twin] = of
        twins_of.setdefault(of, []).append(twin)
    return host


def _map_key(t: PenDayTracklets, twin: int, of: int) -> MapKey:
    lo, hi = sorted((str(t.camera[twin]), str(t.camera[of])))
    return lo, hi


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


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.asarray(np.log(q) - np.log1p(-q))


def _simultaneous(host: TrackPath | None, twin: TrackPath | None) -> np.ndarray | None:
    """Return (m, 4) rows [host x, host y, twin x, twin y] at the twin's observations within
    the host's path (the host's place interpolated to the twin's moment), or None."""
    if host is None or twin is None or len(host.t_s) == 0:
        return None
    t = twin.t_s
    inside = (t >= host.t_s[0] - SAME_MOMENT_S) & (t <= host.t_s[-1] + SAME_MOMENT_S)
    if not inside.any():
        return None
    t = t[inside]
    hx = np.interp(t, host.t_s, host.xy[:, 0])
    hy = np.interp(t, host.t_s, host.xy[:, 1])
    return np.column_stack([hx, hy, twin.xy[inside]])


def _position_evidence(
    found: TwinCandidates, maps: dict[MapKey, CameraMap]
) -> tuple[np.ndarray, np.ndarray]:
    """Return each candidate pair's log likelihood ratio (twin against chance) from where
    its two tracklets were at once, and whether there was any (a map and a shared moment).
    Chance is a point anywhere in the part of the second camera's view animals stood in."""
    n = len(found.points)
    evidence = np.zeros(n)
    placed = np.zeros(n, dtype=bool)
    areas: dict[MapKey, float] = {}
    for key in {found.key[k] for k in range(n) if found.points[k] is not None} & set(maps):
        on_second = [
            p[:, 2:] for k, p in enumerate(found.points) if p is not None and found.key[k] == key
        ]
        areas[key] = max(float(np.prod(np.ptp(np.concatenate(on_second), axis=0))), 1.0)
    for k, p in enumerate(found.points):
        if p is not None and found.key[k] in areas:
            evidence[k] = maps[found.key[k]].log_ratio(p, areas[found.key[k]])
            placed[k] = True
    return evidence, placed


def _oriented(p: np.ndarray | None, host_on_lo: bool) -> np.ndarray:
    assert p is not None
    return p if host_on_lo else p[:, [2, 3, 0, 1]]


@dataclass(frozen=True)
class CameraMap:
    """Where a point of one camera's view is in its paired camera's, and how well."""

    homography: np.ndarray  # (3, 3), first camera's px to the second's
    sigma_px: float  # spread of a twin's residuals, per axis
    miss_share: float  # share of a twin's observations the map misses (a clipped bbox)
    miss_sigma_px: float  # spread of those

    def log_ratio(self, points: np.ndarray, area: float) -> float:
        """Return the log likelihood ratio, twin against chance, of simultaneous points
        (m, 4), capped at ln 1000; chance is a point anywhere in `area` px^2."""
        r2 = _residual2(self.homography[None], points)[0]
        twin = (1 - self.miss_share) * _gauss2(r2, self.sigma_px) + self.miss_share * _gauss2(
            r2, self.miss_sigma_px
        )
        lr = float(np.log(np.maximum(twin * area, 1e-300)).sum())
        return float(np.clip(lr, -MAX_CUE, MAX_CUE))

    def to_json(self) -> dict[str, object]:
        return {
            "homography": [float(v) for v in self.homography.ravel()],
            "sigma_px": self.sigma_px,
            "miss_share": self.miss_share,
            "miss_sigma_px": self.miss_sigma_px,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> CameraMap:
        return cls(
            homography=np.asarray(value["homography"], dtype=np.float64).reshape(3, 3),
            sigma_px=float(value["sigma_px"]),
            miss_share=float(value["miss_share"]),
            miss_sigma_px=float(value["miss_sigma_px"]),
        )


PenMaps = dict[str, dict[MapKey, CameraMap]]  # pen_id: its camera pairs' maps


def stored_camera_maps(record: Record) -> PenMaps:
    """Return the camera maps the last link run learned, by pen (none in an older record,
    or one whose stored maps cannot be read: they are learned again)."""
    out: PenMaps = {}
    try:
        for pen_id, a, b, value in record.metadata.get(META_CAMERA_MAPS) or []:
            out.setdefault(str(pen_id), {})[(str(a), str(b))] = CameraMap.from_json(value)
    except (TypeError, ValueError, KeyError):
        return {}
    return out


def save_camera_maps(record: Record, maps: PenMaps) -> None:
    """Keep the run's camera maps in the record (the caller holds the writer lock)."""
    rows = [
        [pen_id, a, b, m.to_json()]
        for pen_id, by_pair in sorted(maps.items())
        for (a, b), m in sorted(by_pair.items())
    ]
    record.set_metadata(META_CAMERA_MAPS, rows)


def describe_maps(maps: PenMaps, twins: int) -> str:
    """Return one line saying which camera maps are in use and how well they place twins."""
    if not maps:
        return ""
    parts = [
        f"{pen_id} {a}->{b} ({m.sigma_px:.1f} px, {m.miss_share:.0%} of views missed)"
        for pen_id, by_pair in sorted(maps.items())
        for (a, b), m in sorted(by_pair.items())
    ]
    return f"camera maps: {'; '.join(parts)}; {twins:,} twins given their host's link"


def _gauss2(r2: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(np.exp(-r2 / (2 * sigma**2)) / (2 * np.pi * sigma**2))


def _fit_map(groups: list[np.ndarray]) -> CameraMap | None:
    """Return the homography from the first camera's points [:, :2] to the second's [:, 2:],
    with the spread of its residuals, from the points of candidate pairs (`groups`, one
    array per pair, many of them wrong hosts); None when too few agree.

    RANSAC first (four points of four different pairs a draw, the draws seeded, so the map
    is the same in any process): the pairs that look alike are often a wrong host in a full
    pen, and a least-squares fit over them all would be the average of nothing. The best
    draw's inliers then refine it, trimmed at the 99 % quantile of their own spread."""
    sized = [g for g in groups if len(g)]
    points = np.concatenate(sized) if sized else np.zeros((0, 4))
    if len(sized) < MIN_MAP_PAIRS or len(points) < MIN_MAP_POINTS:
        return None
    rng = np.random.default_rng(0)
    # Half the draws take four points of one pair (right whenever that pair is a twin, but
    # a still animal's points are nearly one), half one point of each of four pairs.
    long_enough = [g for g in sized if len(g) >= 4]
    samples = []
    for k in range(RANSAC_DRAWS):
        if k % 2 == 0 and long_enough:
            g = long_enough[rng.integers(len(long_enough))]
            samples.append(g[rng.choice(len(g), 4, replace=False)])
        else:
            row = rng.choice(len(sized), 4, replace=False)
            samples.append(np.array([sized[i][rng.integers(len(sized[i]))] for i in row]))
    draws = _homographies(np.stack(samples))
    extent = np.ptp(points[:, 2:], axis=0)
    tolerance = RANSAC_TOLERANCE * float(np.hypot(*extent))
    scored = points[rng.choice(len(points), min(len(points), RANSAC_SCORED), replace=False)]
    r2 = _residual2(draws, scored)
    # A draw that squashes the view onto a line scores well (many points lie near one
    # line) and means nothing: two views of one floor keep its two dimensions.
    inliers = np.where(_squashing(draws, points), -1, (r2 <= tolerance**2).sum(axis=1))
    best = draws[int(np.argmax(inliers))]
    keep = _residual2(best[None], points)[0] <= tolerance**2
    for _ in range(MAP_ROUNDS):  # grown from the draw's inliers: a local draw widens
        if keep.sum() < MIN_MAP_POINTS:
            return None
        best = _homographies(points[keep][None])[0]
        keep = _residual2(best[None], points)[0] <= tolerance**2
    if _squashing(best[None], points)[0]:
        return None
    transform, sigma2 = best, tolerance**2
    for _ in range(MAP_ROUNDS):
        if keep.sum() < MIN_MAP_POINTS:
            return None
        transform = _homographies(points[keep][None])[0]
        r2_all = _residual2(transform[None], points)[0]
        # r^2 / sigma^2 is chi-squared with 2 degrees of freedom: its median is 2 ln 2.
        sigma2 = max(float(np.median(r2_all[keep])) / (2 * np.log(2.0)), MIN_SIGMA_PX**2)
        keep = r2_all <= 9.21 * sigma2  # the 99 % quantile of chi-squared(2)
    return CameraMap(transform, float(np.sqrt(sigma2)), *_misses(sized, transform, sigma2))


def _misses(groups: list[np.ndarray], transform: np.ndarray, sigma2: float) -> tuple[float, float]:
    """Return the share of a twin's observations the map misses and their spread (px, per
    axis), from the pairs most of whose observations it explains (twins, by the map)."""
    missed, seen, r2_missed = 0, 0, []
    for g in groups:
        r2 = _residual2(transform[None], g)[0]
        inside = r2 <= 9.21 * sigma2
        if inside.mean() >= 0.5:
            seen += len(g)
            missed += int((~inside).sum())
            r2_missed.append(r2[~inside])
    share = float(np.clip(missed / max(seen, 1), MIN_MISS_SHARE, MAX_MISS_SHARE))
    spread2 = float(np.concatenate(r2_missed).mean()) / 2 if missed else 0.0
    return share, float(np.sqrt(max(spread2, 9.0 * sigma2)))


def _squashing(h: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Return which homographies (s, 3, 3) cannot be two views of one floor over the first
    camera's points (m, 4): somewhere among them (the middle and the corners of where most
    points lie) one direction shrinks MAX_SQUASH times more than the other, the map is
    singular, or it turns the view over in one place and not in another (the horizon runs
    through it)."""
    src = p[:, :2]
    lo, hi = np.percentile(src, 10, axis=0), np.percentile(src, 90, axis=0)
    places = np.array([src.mean(axis=0), lo, hi, [lo[0], hi[1]], [hi[0], lo[1]]])
    step = max(float(np.ptp(src, axis=0).max()) / 100, 1.0)
    bad = np.zeros(len(h), dtype=bool)
    signs = []
    for place in places:
        probe = place + np.array([[0.0, 0.0], [step, 0.0], [0.0, step]])
        at = np.einsum("sij,mj->smi", h, np.column_stack([probe, np.ones(3)]))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            xy = at[..., :2] / at[..., 2:]
            jacobian = np.stack([xy[:, 1] - xy[:, 0], xy[:, 2] - xy[:, 0]], axis=-1) / step
        broken = np.asarray(~np.isfinite(jacobian).all(axis=(1, 2)), dtype=bool)
        jacobian = np.where(broken[:, None, None], 0.0, jacobian)
        values = np.linalg.svd(jacobian, compute_uv=False)
        bad |= broken | (values[:, 1] * MAX_SQUASH < values[:, 0]) | (values[:, 0] <= 0)
        signs.append(np.sign(np.linalg.det(jacobian)))
    turned = np.ptp(np.stack(signs), axis=0) > 0
    return np.asarray(bad | turned)


def _homographies(p: np.ndarray) -> np.ndarray:
    """Return the homography (s, 3, 3) of each set of correspondences (s, m, 4), m >= 4, by
    the direct linear transform on Hartley-normalised points."""
    src, t_src = _normalised(p[..., :2])
    dst, t_dst = _normalised(p[..., 2:])
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    rows_u = np.stack([-x, -y, -one, zero, zero, zero, u * x, u * y, u], axis=-1)
    rows_v = np.stack([zero, zero, zero, -x, -y, -one, v * x, v * y, v], axis=-1)
    a = np.concatenate([rows_u, rows_v], axis=1)
    # The null vector is the last right singular vector; the reduced SVD of four points'
    # eight rows has no ninth, so it is asked for in full there (a 9-wide matrix, small).
    h = np.linalg.svd(a, full_matrices=a.shape[1] < 9)[2][:, -1, :].reshape(-1, 3, 3)
    return np.asarray(np.linalg.inv(t_dst) @ h @ t_src)


def _normalised(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return points (s, m, 2) moved to mean 0 and mean distance sqrt 2, and the (s, 3, 3)
    similarity that does it."""
    mean = xy.mean(axis=1, keepdims=True)
    spread = np.linalg.norm(xy - mean, axis=-1).mean(axis=1)
    scale = np.sqrt(2.0) / np.maximum(spread, 1e-9)
    t = np.zeros((len(xy), 3, 3))
    t[:, 0, 0] = t[:, 1, 1] = scale
    t[:, 0, 2] = -scale * mean[:, 0, 0]
    t[:, 1, 2] = -scale * mean[:, 0, 1]
    t[:, 2, 2] = 1.0
    return (xy - mean) * scale[:, None, None], t


def _residual2(h: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Return the squared distance (s, m) of each point's image under each homography from
    its partner, px^2 (infinite where a point maps to infinity)."""
    src = np.column_stack([p[:, :2], np.ones(len(p))])
    mapped = np.einsum("sij,mj->smi", h, src)
    w = mapped[..., 2]
    safe = np.where(np.abs(w) > 1e-12, w, np.nan)
    r2 = ((mapped[..., :2] / safe[..., None] - p[None, :, 2:]) ** 2).sum(axis=-1)
    return np.asarray(np.where(np.isnan(r2), np.inf, r2))


def _twin_posterior(best: np.ndarray, sims: np.ndarray, chance: np.ndarray) -> np.ndarray | None:
    """Return, for each similarity in `sims`, the posterior that it is a twin's, under a
    mixture fitted by EM to the best-host similarities `best`: chance fixed to `chance`'s
    mean and spread, the twin component's mean, spread and share free. None when the
    mixture finds no component apart from chance."""
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
            return None
        share = float(np.clip(weight / len(best), 1e-3, 1 - 1e-3))
        mu1 = float((p * best).sum() / weight)
        sd1 = max(float(np.sqrt((p * (best - mu1) ** 2).sum() / weight)), floor)
    if mu1 <= mu0 + sd0:
        return None  # no component apart from chance: no twins to find
    return _responsibility(sims, mu0, sd0, mu1, sd1, share)


def _responsibility(
    s: np.ndarray, mu0: float, sd0: float, mu1: float, sd1: float, share: float
) -> np.ndarray:
    """Return the posterior of the twin component for each value of `s`."""
    log0 = np.log(1 - share) - np.log(sd0) - 0.5 * ((s - mu0) / sd0) ** 2
    log1 = np.log(share) - np.log(sd1) - 0.5 * ((s - mu1) / sd1) ** 2
    return np.asarray(1.0 / (1.0 + np.exp(np.clip(log0 - log1, -700, 700))))
