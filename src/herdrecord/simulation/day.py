"""One simulated day: behaviour, tracking, measurements, embeddings and keyframes of the herd.

Each day draws from its own random stream (seed, day), so days can be generated one at a
time, in order, with the same result as a whole run.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np

from herdrecord.simulation import appearance, behaviour, render, tracking
from herdrecord.simulation.appearance import HerdLooks, SampleContext
from herdrecord.simulation.behaviour import EATING, LYING, Bouts
from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.edge_json import DayEdgeData
from herdrecord.simulation.herd import DayRoster, HerdPlan, plan_herd, tag_id
from herdrecord.simulation.observe import MARGIN_PX, Observations, ObservedAnimal, observe
from herdrecord.simulation.overlap import add_overlap_views
from herdrecord.simulation.render import KeyframePainter, Lighting
from herdrecord.simulation.switches import Owners, switch_identities, tracklet_owners
from herdrecord.simulation.tracking import LyingAt, Segments

# Independent random streams per purpose.
HERD_STREAM, LOOKS_STREAM, DAY_STREAM, WANDER_STREAM = 1, 2, 3, 4
MIDNIGHT_STREAM = 6  # (seed, this, d): where every animal is at the midnight starting day d
KEYFRAMES_MAX = 2  # keyframes per tracklet: at its first and last sample


@dataclass(frozen=True)
class World:
    """Everything fixed for a whole run: the config, the herd plan and how animals look."""

    config: SimulationConfig
    plan: HerdPlan
    looks: HerdLooks
    painter: KeyframePainter  # caches outlines and floors; output depends only on inputs


def build_world(config: SimulationConfig) -> World:
    """Return the herd plan and appearance of a run."""
    plan = plan_herd(config, np.random.default_rng([config.seed, HERD_STREAM]))
    rng = np.random.default_rng([config.seed, LOOKS_STREAM])
    is_sow = np.array([a.role == "sow" for a in plan.animals], dtype=bool)
    looks = appearance.draw_looks(is_sow, plan.twin_of, config, rng)
    wander_rng = np.random.default_rng([config.seed, WANDER_STREAM])
    looks = replace(looks, wander=appearance.draw_wander(len(plan.animals), config, wander_rng))
    coats = render.draw_coats(len(plan.animals), plan.twin_of, rng)
    painter = KeyframePainter(coats, config.keyframe_size_px, config.keyframe_quality, rng)
    return World(config, plan, looks, painter)


@dataclass(frozen=True)
class DayTruth:
    """What really happened on one day, columnar."""

    roster: DayRoster
    minutes: np.ndarray  # (n_rows, 9) minutes per behaviour class while present
    tracked_s: np.ndarray  # (n_rows,) seconds covered by tracklets that started on the animal
    segments: Segments  # the tracklets; the paired cameras' simultaneous views come last
    owners: Owners  # (S,) who each tracklet really is (its majority animal), switches
    n_observations: np.ndarray  # (S,) per tracklet
    n_samples: np.ndarray  # (S,)


@dataclass(frozen=True)
class SimulatedDay:
    """One day's edge data and its ground truth."""

    edge: DayEdgeData
    truth: DayTruth


def simulate_day(world: World, d: int, first_track_number: np.ndarray) -> SimulatedDay:
    """Return day `d`; track numbers per device continue from `first_track_number` (pens,)."""
    config = world.config
    rng = np.random.default_rng([config.seed, DAY_STREAM, d])
    roster = world.plan.days[d]
    factors = behaviour.condition_factors(roster.lame, roster.disease, roster.sow_state)
    bouts = behaviour.draw_bouts(factors, rng)
    segments = tracking.draw_segments(
        roster.present_from_s, roster.present_to_s, config, rng, _lying_at(bouts)
    )
    outages = tracking.draw_outages(config.n_pens, config, rng)
    segments = tracking.cut_outages(segments, roster.pen, outages)
    n_tracked = len(segments)
    interval_ms = round(config.obs_interval_s * 1000)
    obs_segment, obs_t_ms = tracking.observation_times(segments, interval_ms)
    owner = switch_identities(roster, segments, obs_segment, obs_t_ms, config, rng)
    places = (midnight_places(world, d), midnight_places(world, d + 1))
    obs = _observe(roster, bouts, owner, obs_segment, obs_t_ms, config, rng, places)
    if config.camera_overlap_share > 0.0:
        segments, obs, owner = add_overlap_views(
            roster, bouts, segments, obs, owner, outages, config, rng
        )
        obs_segment, obs_t_ms = obs.segment, obs.t_ms
    obs_first, obs_count = _runs(obs_segment, len(segments))
    sample_obs = _sample_rows(segments, obs_first, obs_count, config)
    sample_first, sample_count = _runs(obs_segment[sample_obs], len(segments))
    lights, light_vectors = _lighting(config, rng)
    embeddings, quality = _embed(
        world, roster, segments, obs, owner, sample_obs, light_vectors, rng, d
    )
    keyframe_obs = _keyframe_rows(sample_first, sample_count, sample_obs, config)
    jpegs = _render(world, roster, segments, obs, owner, keyframe_obs, lights, rng)
    keyframe_first, keyframe_count = _runs(obs_segment[keyframe_obs], len(segments))
    pen = roster.pen[segments.row]
    tags = _tag_reads(roster, segments, obs, owner, obs_first, config, rng)
    edge = DayEdgeData(
        day=config.start + timedelta(days=d),
        device=pen,
        pen=pen,
        camera=segments.camera,
        start_s=segments.start_s,
        end_s=segments.end_s,
        track_number=_track_numbers(pen, segments, first_track_number),
        tag=tags,
        obs_first=obs_first,
        obs_count=obs_count,
        obs_t_ms=obs_t_ms,
        obs_bbox=obs.bbox,
        obs_area_px=obs.area_px,
        obs_behaviour=obs.behaviour,
        obs_behaviour_conf=obs.behaviour_conf,
        obs_speed_px_s=obs.speed_px_s,
        obs_gait_score=obs.gait_score,
        sample_first=sample_first,
        sample_count=sample_count,
        sample_t_ms=obs_t_ms[sample_obs],
        sample_embedding=embeddings,
        sample_quality=quality,
        keyframe_first=keyframe_first,
        keyframe_count=keyframe_count,
        keyframe_t_ms=obs_t_ms[keyframe_obs],
        keyframe_bbox=obs.bbox[keyframe_obs],
        keyframe_jpeg_b64=jpegs,
    )
    minutes = behaviour.minutes_per_class(
        bouts, len(roster.animal), roster.present_from_s, roster.present_to_s
    )
    tracked = np.bincount(
        segments.row[:n_tracked],
        weights=(segments.end_s - segments.start_s)[:n_tracked],
        minlength=len(roster.animal),
    )
    owners = tracklet_owners(obs_segment, obs_t_ms, owner)
    truth = DayTruth(roster, minutes, tracked, segments, owners, obs_count, sample_count)
    return SimulatedDay(edge, truth)


def _lying_at(bouts: Bouts) -> LyingAt:
    """Return whether given roster rows lie at given seconds into the day."""

    def lying(row: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        return np.isin(bouts.state[behaviour.bout_index(bouts, row, t_s)], LYING)

    return lying


def _observe(
    roster: DayRoster,
    bouts: Bouts,
    row: np.ndarray,
    obs_segment: np.ndarray,
    obs_t_ms: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
    places: tuple[np.ndarray, np.ndarray],
) -> Observations:
    """Return the measurements of observations of roster rows `row` (n_obs,); `places` are
    every animal's bbox centre (n_animals, 2) at the day's first and last midnight."""
    bout = behaviour.bout_index(bouts, row, obs_t_ms / 1000.0)
    animal_of = roster.animal[row]
    animal = ObservedAnimal(
        row=row,
        pen=roster.pen[row],
        weight_kg=roster.weight_kg[row],
        lame=roster.lame[row],
        state=bouts.state[bout],
        heading_rad=bouts.heading_rad[bout],
        bout=bout,
        midnight_xy=(places[0][animal_of], places[1][animal_of]),
    )
    return observe(obs_segment, obs_t_ms, animal, config, rng)


def midnight_places(world: World, d: int) -> np.ndarray:
    """Return where every animal is (n_animals, 2 px) at the midnight that starts day `d`:
    the end of day d - 1's walk and the start of day d's (each day still draws alone)."""
    width, height = world.config.image_size_px
    lo = np.array([MARGIN_PX, MARGIN_PX])
    span = np.array([width, height]) - 2.0 * lo
    rng = np.random.default_rng([world.config.seed, MIDNIGHT_STREAM, d])
    return np.asarray(lo + rng.uniform(0.0, 1.0, (len(world.plan.animals), 2)) * span)


def _runs(owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (first row, count) per owner 0..n-1 of rows sorted by owner."""
    count = np.bincount(owner, minlength=n).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    return first, count


def _sample_rows(
    segments: Segments, obs_first: np.ndarray, obs_count: np.ndarray, config: SimulationConfig
) -> np.ndarray:
    """Return the observation rows that carry an embedding sample, spread over each tracklet.

    A tracklet gets one sample plus one per `sample_every_s` of length, at most the cap
    and never more than it has observations.
    """
    length_s = segments.end_s - segments.start_s
    n = 1 + (length_s // config.sample_every_s).astype(np.int64)
    n = np.minimum(np.minimum(n, config.samples_per_tracklet_max), obs_count)
    seg = np.repeat(np.arange(len(segments)), n)
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    j = np.arange(len(seg)) - first[seg]
    # Sample j sits at the centre of the j-th of n equal parts of the tracklet.
    return np.asarray(obs_first[seg] + ((2 * j + 1) * obs_count[seg]) // (2 * n[seg]))


def _keyframe_rows(
    sample_first: np.ndarray,
    sample_count: np.ndarray,
    sample_obs: np.ndarray,
    config: SimulationConfig,
) -> np.ndarray:
    """Return the observation rows that carry a keyframe: each tracklet's first and last sample."""
    if not config.keyframes:
        return np.zeros(0, dtype=np.int64)
    last = sample_first + sample_count - 1
    two = sample_count >= KEYFRAMES_MAX
    rows = np.stack([sample_first, np.where(two, last, -1)], axis=1).ravel()
    return np.asarray(sample_obs[rows[rows >= 0]])


def _lighting(
    config: SimulationConfig, rng: np.random.Generator
) -> tuple[list[list[Lighting]], np.ndarray]:
    """Return each camera's light today and its embedding offset, (pens, cameras, dim)."""
    pens, cameras, dim = config.n_pens, config.cameras_per_pen, config.embedding_dim
    brightness = rng.uniform(0.8, 1.15, (pens, cameras))
    warmth = rng.uniform(-1.0, 1.0, (pens, cameras))
    lights = [
        [Lighting(float(brightness[p, c]), float(warmth[p, c])) for c in range(cameras)]
        for p in range(pens)
    ]
    vectors = appearance.random_directions(pens * cameras, dim, rng) * np.float32(
        config.lighting_norm
    )
    return lights, vectors.reshape(pens, cameras, dim)


def _embed(
    world: World,
    roster: DayRoster,
    segments: Segments,
    obs: Observations,
    owner: np.ndarray,
    sample_obs: np.ndarray,
    light_vectors: np.ndarray,
    rng: np.random.Generator,
    day: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the samples' embeddings (n, dim) and quality scores (n,)."""
    config = world.config
    seg = obs.segment[sample_obs]
    row = owner[sample_obs]
    nuisance = appearance.random_directions(len(segments), config.embedding_dim, rng)
    nuisance *= np.float32(config.tracklet_noise_norm)
    quality = appearance.draw_quality(len(sample_obs), rng)
    pens, cameras, dim = light_vectors.shape
    seen = SampleContext(
        animal=roster.animal[row],
        weight_kg=roster.weight_kg[row],
        state=obs.true_state[sample_obs],
        lighting=light_vectors.reshape(pens * cameras, dim),
        camera=roster.pen[row] * cameras + segments.camera[seg],
        nuisance=nuisance,
        tracklet=seg,
        quality=quality,
        day=day,
    )
    return appearance.embed_samples(world.looks, seen, config, rng), quality


def _render(
    world: World,
    roster: DayRoster,
    segments: Segments,
    obs: Observations,
    owner: np.ndarray,
    keyframe_obs: np.ndarray,
    lights: list[list[Lighting]],
    rng: np.random.Generator,
) -> list[str]:
    """Return base64 JPEG keyframes, one per keyframe row."""
    seg = obs.segment[keyframe_obs]
    row = owner[keyframe_obs]
    columns = zip(
        roster.animal[row].tolist(),
        roster.pen[row].tolist(),
        segments.camera[seg].tolist(),
        roster.weight_kg[row].tolist(),
        obs.heading_rad[keyframe_obs].tolist(),
        obs.true_state[keyframe_obs].tolist(),
        strict=True,
    )
    out: list[str] = []
    for animal, pen, cam, weight, heading, state in columns:
        jpeg = world.painter.render(animal, weight, heading, state, lights[pen][cam], rng)
        out.append(base64.b64encode(jpeg).decode("ascii"))
    return out


def _tag_reads(
    roster: DayRoster,
    segments: Segments,
    obs: Observations,
    owner: np.ndarray,
    obs_first: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> list[str | None]:
    """Return the tag read of each tracklet, or None; reads happen at the feeder.

    Only tracklets with eating can be read, and the read names the animal at the feeder in
    the tracklet's first eating observation; the chance per such tracklet is set so that
    about `tag_read_rate` of all tracklets carry a read.
    """
    if len(segments) == 0:
        return []
    eating = obs.true_state == EATING
    eats = np.add.reduceat(eating.astype(np.int64), obs_first) > 0
    chance = min(1.0, config.tag_read_rate * len(segments) / max(int(eats.sum()), 1))
    read = eats & (rng.random(len(segments)) < chance)
    first_eating = np.minimum.reduceat(
        np.where(eating, np.arange(len(eating)), len(eating)), obs_first
    )
    animal = roster.animal[owner[np.minimum(first_eating, len(eating) - 1)]]
    return [tag_id(int(a)) if r else None for a, r in zip(animal, read, strict=True)]


def _track_numbers(pen: np.ndarray, segments: Segments, first: np.ndarray) -> np.ndarray:
    """Return per-device track numbers, increasing with start time, continuing `first`."""
    order = np.lexsort((segments.row, segments.start_s, pen))
    numbers = np.empty(len(segments), dtype=np.int64)
    sorted_pen = pen[order]
    group_start = np.searchsorted(sorted_pen, sorted_pen, side="left")
    numbers[order] = first[sorted_pen] + np.arange(len(order)) - group_start
    return numbers
