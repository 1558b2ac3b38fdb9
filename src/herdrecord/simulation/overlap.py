"""Two cameras with overlapping views on one pen: the same animal tracked twice at once.

Cameras are paired (cam1 with cam2, cam3 with cam4, ...). While an animal is in the shared
part of the views, the paired camera runs its own tracklet of it: its own track id, its own
measurements and embedding samples (under that camera's light), positions in that
camera's frame. The paired camera hangs on the opposite side of the pen, so its frame is
the first one turned half a turn: (x, y) -> (width - x, height - y).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from herdrecord.simulation import behaviour
from herdrecord.simulation.behaviour import Bouts
from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.herd import DayRoster
from herdrecord.simulation.observe import Observations, ObservedAnimal, observe
from herdrecord.simulation.tracking import HOUR_S, Segments


def paired_camera(camera: int, cameras_per_pen: int) -> int | None:
    """Return the camera whose view overlaps `camera`'s (0-based), or None."""
    partner = camera ^ 1
    return partner if partner < cameras_per_pen else None


def overlapping_pairs(cameras_per_pen: int) -> list[tuple[int, int]]:
    """Return the (camera, camera) pairs with overlapping views, 0-based, within a pen."""
    return [(c, c + 1) for c in range(0, cameras_per_pen - 1, 2)]


def add_overlap_views(
    roster: DayRoster,
    bouts: Bouts,
    segments: Segments,
    obs: Observations,
    owner: np.ndarray,
    down: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[Segments, Observations, np.ndarray]:
    """Return the segments, observations and observation owners with the paired cameras'
    simultaneous tracklets appended (after the originals, so observations stay grouped
    by segment).

    Each tracklet of a paired camera gets a twin covering a contiguous `camera_overlap_share`
    of its observations (rounded at random, so the share holds on average) at a random
    place in it; twins that would fall in an hour the paired camera is down are dropped.
    """
    n_seg = len(segments)
    count = np.bincount(obs.segment, minlength=n_seg)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    partner = segments.camera ^ 1
    k = np.floor(config.camera_overlap_share * count + rng.random(n_seg)).astype(np.int64)
    k = np.where(partner < config.cameras_per_pen, np.minimum(k, count), 0)
    offset = np.minimum((rng.random(n_seg) * (count - k + 1)).astype(np.int64), count - k)
    lo = first + offset
    hi = lo + k - 1
    pen = roster.pen[segments.row]
    hours_down = np.cumsum(
        np.concatenate([np.zeros((*down.shape[:2], 1), dtype=np.int64), down], axis=2), axis=2
    )
    keep = np.flatnonzero(k > 0)
    first_h = obs.t_ms[lo[keep]] // 1000 // HOUR_S
    last_h = obs.t_ms[hi[keep]] // 1000 // HOUR_S
    cam = partner[keep]
    up = hours_down[pen[keep], cam, last_h + 1] - hours_down[pen[keep], cam, first_h] == 0
    keep = keep[up]
    if len(keep) == 0:
        return segments, obs, owner
    n_twin = k[keep]
    src = np.repeat(lo[keep] - np.concatenate([[0], np.cumsum(n_twin)[:-1]]), n_twin)
    src += np.arange(len(src))
    twin_segment = n_seg + np.repeat(np.arange(len(keep)), n_twin)
    twins = Segments(
        row=segments.row[keep],
        camera=partner[keep],
        start_s=obs.t_ms[lo[keep]] // 1000,
        end_s=-(-obs.t_ms[hi[keep]] // 1000),
    )
    seen = owner[src]
    t_s = obs.t_ms[src] / 1000.0
    animal = ObservedAnimal(
        row=seen,
        pen=roster.pen[seen],
        weight_kg=roster.weight_kg[seen],
        lame=roster.lame[seen],
        state=obs.true_state[src],
        heading_rad=obs.heading_rad[src] + np.pi,
        bout=behaviour.bout_index(bouts, seen, t_s),
    )
    size = np.array(config.image_size_px, dtype=np.float64)
    twin_obs = observe(twin_segment, obs.t_ms[src], animal, config, rng, size - obs.centre_px[src])
    return (
        _concat_segments(segments, twins),
        _concat_obs(obs, twin_obs),
        np.concatenate([owner, seen]),
    )


def _concat_segments(a: Segments, b: Segments) -> Segments:
    return Segments(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in _names(Segments)))


def _concat_obs(a: Observations, b: Observations) -> Observations:
    return Observations(
        *(np.concatenate([getattr(a, f), getattr(b, f)]) for f in _names(Observations))
    )


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]
