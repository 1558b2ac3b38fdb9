"""Appearance embeddings: what the edge's embedder (DINOv3 ViT-S/16) would see of each pig.

A sample embedding is the L2-normalised sum of
- a breed mean every pig shares (sows add a sow-line offset),
- a per-animal identity offset (near-twins have nearly equal offsets),
- drift that grows as the pig grows from 30 to 110 kg (shared and per-animal parts),
- optionally a wander of each pig's look that does not follow growth (dirt, scratches,
  marks): a fresh random offset every `WANDER_DAYS` days, blended day by day,
- a per-behaviour posture offset (lying and standing pigs look different from above),
- a per camera-day lighting offset and a per-tracklet nuisance (pose, occlusion),
- per-sample noise that is larger at low quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from herdrecord.simulation.behaviour import N_CLASSES
from herdrecord.simulation.config import SimulationConfig

SOW_LINE_NORM = 0.4  # sows are a different line and age: their own offset from the breed
DRIFT_FROM_KG, DRIFT_SPAN_KG = 30.0, 80.0  # drift is 0 at 30 kg and 1 at 110 kg
DRIFT_MAX = 1.3  # sows and heavy finishers stop changing
QUALITY_MIN = 0.3
QUALITY_BETA = (4.0, 1.5)  # quality = 0.3 + 0.7 * Beta(4, 1.5): mean ~0.81
CHUNK_ROWS = 2048  # samples embedded at a time
QUALITY_MEAN = QUALITY_MIN + (1.0 - QUALITY_MIN) * QUALITY_BETA[0] / sum(QUALITY_BETA)
WANDER_DAYS = 7  # a pig's wandering look is re-drawn this often and blended in between


@dataclass(frozen=True)
class HerdLooks:
    """The fixed appearance vectors of a herd; float32 arrays."""

    breed: np.ndarray  # (dim,)
    identity: np.ndarray  # (n_animals, dim), breed line included
    drift: np.ndarray  # (n_animals, dim): change from 30 to 110 kg, shared part included
    posture: np.ndarray  # (9, dim)
    wander: np.ndarray | None = None  # (anchors, n_animals, dim): looks every WANDER_DAYS days


def random_directions(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Return n random unit vectors, shape (n, dim), float32."""
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


def draw_looks(
    is_sow: np.ndarray, twin_of: np.ndarray, config: SimulationConfig, rng: np.random.Generator
) -> HerdLooks:
    """Return the herd's appearance vectors; `twin_of` (n,) names each near-twin's pair or -1."""
    n, dim = len(is_sow), config.embedding_dim
    breed = random_directions(1, dim, rng)[0] * np.float32(config.breed_norm)
    identity = random_directions(n, dim, rng) * np.float32(config.identity_norm)
    twins = np.flatnonzero(twin_of >= 0)
    offset = random_directions(len(twins), dim, rng)
    twin_gap = np.float32(config.near_twin_distance * config.identity_norm)
    identity[twins] = identity[twin_of[twins]] + offset * twin_gap
    sow_line = random_directions(1, dim, rng)[0] * np.float32(SOW_LINE_NORM)
    identity[is_sow] += sow_line
    common = random_directions(1, dim, rng)[0] * np.float32(config.common_drift_norm)
    drift = random_directions(n, dim, rng) * np.float32(config.drift_norm) + common
    posture = random_directions(N_CLASSES, dim, rng) * np.float32(config.posture_norm)
    return HerdLooks(breed=breed, identity=identity, drift=drift, posture=posture)


def draw_wander(n: int, config: SimulationConfig, rng: np.random.Generator) -> np.ndarray | None:
    """Return each animal's wandering look at days 0, 7, 14, ... (anchors, n, dim), or None
    when `drift_walk_norm` is 0."""
    if config.drift_walk_norm <= 0.0:
        return None
    anchors = config.days // WANDER_DAYS + 2
    v = random_directions(anchors * n, config.embedding_dim, rng).reshape(anchors, n, -1)
    return np.asarray(v * np.float32(config.drift_walk_norm), dtype=np.float32)


def draw_quality(n: int, rng: np.random.Generator) -> np.ndarray:
    """Return edge crop quality scores in [0.3, 1], shape (n,)."""
    a, b = QUALITY_BETA
    return QUALITY_MIN + (1.0 - QUALITY_MIN) * rng.beta(a, b, n)


@dataclass(frozen=True)
class SampleContext:
    """Who and how each sample was seen; arrays of shape (n,) unless noted."""

    animal: np.ndarray
    weight_kg: np.ndarray
    state: np.ndarray  # true behaviour class
    lighting: np.ndarray  # (cameras, dim) camera-day lighting offsets
    camera: np.ndarray  # row of `lighting` per sample
    nuisance: np.ndarray  # (tracklets, dim) per-tracklet nuisance
    tracklet: np.ndarray  # row of `nuisance` per sample
    quality: np.ndarray
    day: int = 0  # day of the run (for the wandering look)


def embed_samples(
    looks: HerdLooks, seen: SampleContext, config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Return L2-normalised sample embeddings, shape (n, dim), float32."""
    n, dim = len(seen.animal), config.embedding_dim
    grown = np.clip((seen.weight_kg - DRIFT_FROM_KG) / DRIFT_SPAN_KG, 0.0, DRIFT_MAX)
    gain = config.quality_noise_gain
    # Normalised so that noise at the mean quality has norm `sample_noise_norm`.
    noise_norm = (
        config.sample_noise_norm
        * (1.0 + gain * (1.0 - seen.quality))
        / (1.0 + gain * (1.0 - QUALITY_MEAN))
    )
    noise_sd = (noise_norm / np.sqrt(dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    wander: np.ndarray | None = None
    if looks.wander is not None:
        k, f = divmod(seen.day, WANDER_DAYS)
        blend = np.float32(f / WANDER_DAYS)
        wander = (1.0 - blend) * looks.wander[k] + blend * looks.wander[k + 1]
    # Work in cache-sized chunks: big temporaries cost more in page faults than in arithmetic.
    for lo in range(0, n, CHUNK_ROWS):
        sl = slice(lo, min(lo + CHUNK_ROWS, n))
        v = rng.standard_normal((sl.stop - lo, dim), dtype=np.float32)
        v *= noise_sd[sl, None]
        v += looks.breed
        v += looks.identity[seen.animal[sl]]
        v += looks.drift[seen.animal[sl]] * grown[sl, None].astype(np.float32)
        v += looks.posture[seen.state[sl]]
        v += seen.lighting[seen.camera[sl]]
        v += seen.nuisance[seen.tracklet[sl]]
        if wander is not None:
            v += wander[seen.animal[sl]]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[sl] = v
    return out
