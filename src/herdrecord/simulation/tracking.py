"""How a tracker fragments each animal's day into tracklets, and when cameras are down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from herdrecord.simulation.config import SimulationConfig

DAY_S = 86_400
HOUR_S = 3_600
FIRST_DETECTION_S = 120.0  # an animal is first tracked within ~2 min of the day or arrival
OCCLUSION_SIGMA = 1.0  # lognormal sigma of occlusion gaps


@dataclass(frozen=True)
class Segments:
    """Tracked stretches of one day, sorted by (row, start); arrays of shape (n,)."""

    row: np.ndarray  # roster row of the animal tracked
    camera: np.ndarray  # camera index within the pen
    start_s: np.ndarray  # first frame, whole seconds into the day
    end_s: np.ndarray  # last frame, whole seconds into the day (>= start_s)

    def __len__(self) -> int:
        return len(self.row)


LyingAt = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(roster rows, seconds into the day) -> whether each of those animals lies then."""


def draw_segments(
    present_from_s: np.ndarray,
    present_to_s: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
    lying_at: LyingAt | None = None,
) -> Segments:
    """Return each animal's tracked stretches while it is in the pen.

    A stretch ends when the tracker loses the animal. Most losses are re-acquired seconds
    later on the same camera (a continuation; later still if the animal lies, given
    `lying_at`); the rest are occlusions or huddles that leave the animal untracked for
    minutes, after which another camera may pick it up.
    """
    n = len(present_from_s)
    n_cameras = config.cameras_per_pen
    mu = np.log(config.tracklet_median_s)
    clock = present_from_s + rng.uniform(0.0, FIRST_DETECTION_S, n)
    camera = rng.integers(0, n_cameras, n)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    idx = np.flatnonzero(clock < present_to_s)
    while len(idx):
        start = clock[idx]
        end = np.minimum(start + np.exp(rng.normal(mu, config.tracklet_sigma, len(idx))),
                         present_to_s[idx])  # fmt: skip
        parts.append((idx, camera[idx].copy(), start, end))
        continued = rng.random(len(idx)) < config.continuation_share
        occlusion = np.exp(rng.normal(np.log(config.occlusion_gap_median_s), OCCLUSION_SIGMA,
                                      len(idx)))  # fmt: skip
        reacquired = _continuation_gaps(len(idx), config, rng)
        if lying_at is not None and config.reacquire_lying_factor != 1.0:
            lying = lying_at(idx, end)
            reacquired = np.where(lying, reacquired * config.reacquire_lying_factor, reacquired)
        gap = np.where(continued, reacquired, occlusion)
        switch = ~continued & (rng.random(len(idx)) < config.camera_switch_share)
        if n_cameras > 1:
            hop = 1 + rng.integers(0, n_cameras - 1, len(idx))
            camera[idx] = np.where(switch, (camera[idx] + hop) % n_cameras, camera[idx])
        clock[idx] = end + gap
        idx = idx[clock[idx] < present_to_s[idx]]
    return _whole_seconds(parts)


def _continuation_gaps(n: int, config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Return n re-acquisition gaps, s: uniform in `continuation_gap_s`, or lognormal around
    `reacquire_gap_median_s` when that is set."""
    if config.reacquire_gap_median_s is None:
        gap_lo, gap_hi = config.continuation_gap_s
        return rng.uniform(gap_lo, gap_hi, n)
    return np.exp(rng.normal(np.log(config.reacquire_gap_median_s), config.reacquire_gap_sigma, n))


def _whole_seconds(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> Segments:
    """Return the stretches on whole seconds, sorted by (row, start); drop empty ones."""
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Segments(empty, empty, empty, empty)
    row = np.concatenate([p[0] for p in parts])
    camera = np.concatenate([p[1] for p in parts])
    start = np.ceil(np.concatenate([p[2] for p in parts])).astype(np.int64)
    # The day's last frame is 23:59:59, so a tracklet never crosses midnight.
    end = np.minimum(np.floor(np.concatenate([p[3] for p in parts])), DAY_S - 1).astype(np.int64)
    keep = end >= start
    order = np.lexsort((start[keep], row[keep]))
    return Segments(row[keep][order], camera[keep][order], start[keep][order], end[keep][order])


def draw_outages(n_pens: int, config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Return which camera-hours are down, shape (pens, cameras, 24), bool.

    Outages start in a camera-hour with probability rate / mean length and last a
    geometric number of hours (mean `outage_hours_mean`), so about `outage_rate` of
    camera-hours are down; an outage ends at midnight.
    """
    shape = (n_pens, config.cameras_per_pen, 24)
    onset = rng.random(shape) < config.outage_rate / config.outage_hours_mean
    length = rng.geometric(1.0 / config.outage_hours_mean, shape)
    down = np.zeros(shape, dtype=bool)
    for p, c, h in zip(*np.nonzero(onset), strict=True):
        down[p, c, h : h + length[p, c, h]] = True
    return down


def cut_outages(segments: Segments, pen_of_row: np.ndarray, down: np.ndarray) -> Segments:
    """Return the segments with the parts in down camera-hours removed."""
    if len(segments) == 0 or not down.any():
        return segments
    pen = pen_of_row[segments.row]
    first_h = segments.start_s // HOUR_S
    last_h = segments.end_s // HOUR_S
    down_before = np.concatenate(
        [np.zeros((*down.shape[:2], 1), dtype=np.int64), np.cumsum(down, axis=2)], axis=2
    )
    hit = (
        down_before[pen, segments.camera, last_h + 1] - down_before[pen, segments.camera, first_h]
    ) > 0
    pieces: list[tuple[int, int, int, int]] = []
    for i in np.flatnonzero(hit):
        hours_down = down[pen[i], segments.camera[i]]
        pieces.extend(
            (int(segments.row[i]), int(segments.camera[i]), lo, hi)
            for lo, hi in _up_pieces(int(segments.start_s[i]), int(segments.end_s[i]), hours_down)
        )
    keep = ~hit
    extra = np.array(pieces, dtype=np.int64).reshape(-1, 4)
    row = np.concatenate([segments.row[keep], extra[:, 0]])
    camera = np.concatenate([segments.camera[keep], extra[:, 1]])
    start = np.concatenate([segments.start_s[keep], extra[:, 2]])
    end = np.concatenate([segments.end_s[keep], extra[:, 3]])
    order = np.lexsort((start, row))
    return Segments(row[order], camera[order], start[order], end[order])


def _up_pieces(start: int, end: int, hours_down: np.ndarray) -> list[tuple[int, int]]:
    """Return the [start, end] pieces of a stretch that fall in hours the camera is up."""
    pieces: list[tuple[int, int]] = []
    piece_start: int | None = None
    for hour in range(start // HOUR_S, end // HOUR_S + 1):
        lo, hi = max(start, hour * HOUR_S), min(end, (hour + 1) * HOUR_S - 1)
        if hours_down[hour]:
            if piece_start is not None:
                pieces.append((piece_start, hour * HOUR_S - 1))
                piece_start = None
        elif piece_start is None:
            piece_start = lo
        if hour == end // HOUR_S and piece_start is not None:
            pieces.append((piece_start, hi))
    return pieces


def observation_times(segments: Segments, interval_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (segment index, time in ms into the day) of every observation, in segment order.

    A segment gets one observation at its start and then one every `interval_ms` up to
    its end.
    """
    n_obs = (segments.end_s - segments.start_s) * 1000 // interval_ms + 1
    seg = np.repeat(np.arange(len(segments)), n_obs)
    first = np.concatenate([[0], np.cumsum(n_obs)[:-1]])
    step = np.arange(len(seg)) - first[seg]
    return seg, segments.start_s[seg] * 1000 + step * interval_ms
