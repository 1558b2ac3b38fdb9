"""What the edge measures at each observation: position, bbox, mask area, behaviour, speed, gait.

Positions follow a reflected random walk per animal over the day (continuous across
tracklet breaks, so a continuation starts near where the last tracklet ended), pinned at each
midnight to where the animal is then, so that the barn does not jump at midnight either: the
walk of a day runs from the animal's place at its first midnight to its place at the next (a
random walk with a straight drift between the two, a bridge). Eating and drinking pull the
animal to the feeder and the drinker, and a lying bout spent in a clump puts it beside its
pen-mates at one of the pen's lying spots (the same spots every day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from herdrecord.simulation.behaviour import (
    DRINKING,
    EATING,
    EXPLORING,
    INTERACTING,
    LYING,
    LYING_LATERAL,
    LYING_STERNAL,
    SITTING,
    SPEED_MEAN_PX_S,
    STANDING,
    WALKING,
)
from herdrecord.simulation.config import SimulationConfig

AREA_PX_PER_KG23 = 1660.0  # mask area of a standing pig is this x weight^(2/3), px^2
STEP_TIME_S = 1.0  # motion decorrelates over ~1 s: displacement sd = speed * sqrt(dt * this)
MARGIN_PX = 40.0  # bbox centres stay this far inside the frame
FEEDER_XY = (0.15, 0.15)  # feeder and drinker positions, as fractions of the frame
DRINKER_XY = (0.88, 0.88)
STATION_PULL = 0.8  # how far eating/drinking positions are pulled to the station
GAIT_HEALTHY = 0.35  # mean gait score (0-3 scale) of a sound pig
GAIT_PER_SEVERITY = 0.75  # added per lameness severity step
CLUMPS_PER_PEN = 2  # lying spots per pen (where its clumps form, the same every day)
DAY_S = 86_400.0
LYING_SPOTS_STREAM = 5  # the random stream of the pens' lying spots, fixed for a run
CLUMP_SPREAD_WIDTHS = 0.8  # sd per axis of a clumped pig's offset from the clump centre,
# in body widths: neighbours in a clump lie ~1-2 widths apart

# Relative mask area and body length/width per class: lateral lying shows the legs and
# flank, sitting shows little of the back.
AREA_FACTOR = np.array([1.18, 1.0, 0.72, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95])
ASPECT = np.array([2.3, 2.8, 1.6, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0])

# Classes a behaviour classifier mixes up with each class (-1 pads).
CONFUSABLE = np.array(
    [
        [LYING_STERNAL, -1, -1],
        [LYING_LATERAL, SITTING, -1],
        [LYING_STERNAL, STANDING, -1],
        [WALKING, EXPLORING, SITTING],
        [STANDING, EXPLORING, -1],
        [EXPLORING, STANDING, -1],
        [STANDING, EATING, -1],
        [STANDING, EATING, INTERACTING],
        [EXPLORING, STANDING, -1],
    ]
)  # rows: lying_lateral ... interacting


@dataclass(frozen=True)
class Observations:
    """The edge's measurements of one day, in segment order; arrays of shape (n,)."""

    segment: np.ndarray
    t_ms: np.ndarray
    true_state: np.ndarray  # behaviour class the animal is really in
    behaviour: np.ndarray  # class the edge reports
    behaviour_conf: np.ndarray
    bbox: np.ndarray  # (n, 4) int: x, y, w, h in pixels
    area_px: np.ndarray
    speed_px_s: np.ndarray
    gait_score: np.ndarray  # NaN where the edge made no gait estimate
    heading_rad: np.ndarray
    centre_px: np.ndarray  # (n, 2) true bbox centre before clipping to the frame


@dataclass(frozen=True)
class ObservedAnimal:
    """Per-observation facts about the animal behind each observation."""

    row: np.ndarray  # roster row
    pen: np.ndarray
    weight_kg: np.ndarray
    lame: np.ndarray  # lameness severity 0-3
    state: np.ndarray  # true behaviour class
    heading_rad: np.ndarray  # body orientation of the current bout
    bout: np.ndarray  # index of the behaviour bout of the day
    # (n, 2) where the animal is at the midnight that starts the day and the one that ends it,
    # px; None: a free start (a walk from a uniform place)
    midnight_xy: tuple[np.ndarray, np.ndarray] | None = None


def observe(
    segment: np.ndarray,
    t_ms: np.ndarray,
    animal: ObservedAnimal,
    config: SimulationConfig,
    rng: np.random.Generator,
    centre: np.ndarray | None = None,
) -> Observations:
    """Return the edge's measurements at each observation.

    Positions follow each animal's walk (or clump) unless `centre` (n, 2) gives them, as
    for a second camera's view of observations already made.
    """
    speed = _speed(animal.state, animal.lame, config, rng)
    walked = centre is None
    if centre is None:
        centre = _centres(animal.row, t_ms, animal.state, config, rng, animal.midnight_xy)
    area = (
        AREA_PX_PER_KG23
        * animal.weight_kg ** (2.0 / 3.0)
        * AREA_FACTOR[animal.state]
        * np.exp(rng.normal(0.0, config.area_noise_cv, len(t_ms)))
    )
    heading = animal.heading_rad + rng.normal(0.0, 0.1, len(t_ms))
    behaviour, conf = _classify(animal.state, config, rng)
    gait = _gait(behaviour, animal.lame, config, rng)
    if walked and config.clump_share > 0.0:
        centre = _clumped(centre, animal, area, config, rng)
    return Observations(
        segment=segment,
        t_ms=t_ms,
        true_state=animal.state,
        behaviour=behaviour,
        behaviour_conf=conf,
        bbox=_bboxes(centre, area, ASPECT[animal.state], heading, config),
        area_px=np.rint(area),
        speed_px_s=speed,
        gait_score=gait,
        heading_rad=heading,
        centre_px=centre,
    )


def _speed(
    state: np.ndarray, lame: np.ndarray, config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Return speed in px/s; lame pigs walk slower (-20 % per severity step)."""
    sigma = config.speed_noise_sigma
    noise = np.exp(rng.normal(-0.5 * sigma**2, sigma, len(state)))
    slow = np.where(state == WALKING, 1.0 - 0.2 * lame, 1.0)
    return np.asarray(SPEED_MEAN_PX_S[state] * slow * noise, dtype=np.float64)


def _centres(
    row: np.ndarray,
    t_ms: np.ndarray,
    state: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
    midnight_xy: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Return bbox centres (n, 2) in px: a reflected random walk per animal over the day.

    Observations may come in any order (a tracker that switched animals sees another
    animal's walk); the walk runs over each animal's observations in time order. With
    `midnight_xy` (each observation's animal's place at the day's two midnights, (n, 2) each)
    the walk starts at the first and is drawn to the second by the day's end.
    """
    n = len(t_ms)
    order = np.lexsort((t_ms, row))
    if np.any(order != np.arange(n)):
        xy = np.empty((n, 2))
        pinned = None if midnight_xy is None else (midnight_xy[0][order], midnight_xy[1][order])
        xy[order] = _centres(row[order], t_ms[order], state[order], config, rng, pinned)
        return xy
    width, height = config.image_size_px
    new_row = np.ones(n, dtype=bool)
    new_row[1:] = row[1:] != row[:-1]
    dt_s = np.zeros(n)
    dt_s[1:] = (t_ms[1:] - t_ms[:-1]) / 1000.0
    dt_s[new_row] = 0.0
    sd = SPEED_MEAN_PX_S[state] * np.sqrt(dt_s * STEP_TIME_S)
    walk = np.cumsum(rng.normal(0.0, 1.0, (n, 2)) * sd[:, None], axis=0)
    first = np.flatnonzero(new_row)
    walk -= np.repeat(walk[first], np.diff(np.append(first, n)), axis=0)
    lo = np.array([MARGIN_PX, MARGIN_PX])
    span = np.array([width, height]) - 2.0 * lo
    # Drawn pinned or not, so that the day's later draws are the same either way.
    start = rng.uniform(0.0, 1.0, (len(first), 2)) * span
    runs = np.diff(np.append(first, n))
    if midnight_xy is None:
        xy = _reflect(np.repeat(start, runs, axis=0) + walk, span) + lo
    else:
        # A bridge: the walk plus the straight drift that brings it from this midnight's place
        # to the next one's by the end of the day (t_ms counts from the first midnight).
        begin, end = midnight_xy[0] - lo, midnight_xy[1] - lo
        last = np.append(first[1:], n) - 1
        to_go = np.repeat(end[first] - begin[first] - walk[last], runs, axis=0)
        drift = (t_ms / 1000.0 / DAY_S)[:, None] * to_go
        xy = _reflect(begin + walk + drift, span) + lo
    for station, (fx, fy) in ((EATING, FEEDER_XY), (DRINKING, DRINKER_XY)):
        at = state == station
        target = np.array([fx * width, fy * height]) + rng.normal(0.0, 20.0, (int(at.sum()), 2))
        xy[at] = (1.0 - STATION_PULL) * xy[at] + STATION_PULL * target
    return np.asarray(xy, dtype=np.float64)


def _clumped(
    centre: np.ndarray,
    animal: ObservedAnimal,
    area: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return the centres with clumped lying bouts moved beside the pen's clump centre.

    `clump_share` of lying bouts are spent in one of the pen's clumps of the day; the pig
    keeps its own spot in the clump (an offset in body widths) for the whole bout.
    """
    width, height = config.image_size_px
    n_bouts = int(animal.bout.max(initial=-1)) + 1
    in_clump = rng.random(n_bouts) < config.clump_share
    which = rng.integers(0, CLUMPS_PER_PEN, n_bouts)
    offset = rng.normal(0.0, CLUMP_SPREAD_WIDTHS, (n_bouts, 2))
    # Clump centres keep a clump's pigs inside the frame: two body lengths from the walls.
    wall = np.array([0.2 * width, 0.2 * height])
    size = np.array([width, height], dtype=np.float64)
    # The day's stream still draws the spots it once chose per day (its later draws stay put);
    # the spots themselves come from the run's own stream.
    rng.uniform(wall, size - wall, (config.n_pens, CLUMPS_PER_PEN, 2))
    spots = np.random.default_rng([config.seed, LYING_SPOTS_STREAM])
    centres = spots.uniform(wall, size - wall, (config.n_pens, CLUMPS_PER_PEN, 2))
    at = np.isin(animal.state, LYING) & in_clump[animal.bout]
    bout = animal.bout[at]
    body_width = 2.0 * np.sqrt(area[at] / (np.pi * ASPECT[animal.state[at]]))
    xy = centres[animal.pen[at], which[bout]] + offset[bout] * body_width[:, None]
    out = centre.copy()
    out[at] = np.clip(xy, MARGIN_PX, size - MARGIN_PX)
    return out


def _reflect(x: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Fold values into [0, span] as a walk reflected at both walls would be."""
    folded = np.mod(x, 2.0 * span)
    return np.asarray(np.where(folded > span, 2.0 * span - folded, folded))


def _bboxes(
    centre: np.ndarray,
    area: np.ndarray,
    aspect: np.ndarray,
    heading: np.ndarray,
    config: SimulationConfig,
) -> np.ndarray:
    """Return the axis-aligned bbox (n, 4) [x, y, w, h] of a rotated body ellipse, int px."""
    width, height = config.image_size_px
    a = np.sqrt(area * aspect / np.pi)  # semi-axis along the body
    b = a / aspect
    c, s = np.cos(heading), np.sin(heading)
    w = np.clip(np.rint(2.0 * np.sqrt((a * c) ** 2 + (b * s) ** 2)), 1, width)
    h = np.clip(np.rint(2.0 * np.sqrt((a * s) ** 2 + (b * c) ** 2)), 1, height)
    x = np.clip(np.rint(centre[:, 0] - w / 2.0), 0, width - w)
    y = np.clip(np.rint(centre[:, 1] - h / 2.0), 0, height - h)
    return np.stack([x, y, w, h], axis=1).astype(np.int64)


def _classify(
    state: np.ndarray, config: SimulationConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return the reported class and its confidence; errors go to a confusable class."""
    n = len(state)
    wrong = rng.random(n) < config.behaviour_error_rate
    options = CONFUSABLE[state]
    n_options = (options >= 0).sum(axis=1)
    pick = np.minimum((rng.random(n) * n_options).astype(np.int64), n_options - 1)
    reported = np.where(wrong, options[np.arange(n), pick], state)
    # A wrong call is usually an unsure one.
    conf = np.empty(n)
    conf[wrong] = rng.beta(5.0, 4.0, int(wrong.sum()))
    conf[~wrong] = rng.beta(12.0, 1.5, n - int(wrong.sum()))
    return reported, conf


def _gait(
    behaviour: np.ndarray, lame: np.ndarray, config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Return gait scores (0-3, higher = worse) on some walking observations, NaN elsewhere."""
    n = len(behaviour)
    measured = (behaviour == WALKING) & (rng.random(n) < config.gait_measure_share)
    score = GAIT_HEALTHY + GAIT_PER_SEVERITY * lame + rng.normal(0.0, 0.35, n)
    return np.where(measured, np.clip(score, 0.0, 3.0), np.nan)
