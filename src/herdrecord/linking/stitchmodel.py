"""The record's join model: fitted from the pen-days being linked, kept in the record's metadata.

Each linking run gathers the candidate joins of its pen-days per camera (pen and camera id),
fits each camera's cue mixture where it has enough pairs and pools the rest, and keeps what it
cannot refit from the model the record already holds. The model is stored, versioned, in the
`metadata` table under `link_model` so a later run, `herdrecord link` and the docs can say what
was learned.
"""

from __future__ import annotations

import numpy as np

from herdrecord.linking.assignment import PenDayTracklets
from herdrecord.linking.intervals import overlapping_pairs, pair_cosines
from herdrecord.linking.learned_metric import MAX_PAIRS_PER_PEN_DAY
from herdrecord.linking.stitching import (
    PRIOR_FIT,
    PRIOR_LOOK,
    CandidatePairs,
    DayTracks,
    LookFit,
    StitchModel,
    candidate_pairs,
    chain_ends,
    chains,
    cover_tracklets,
    fit_cues,
    fit_look,
    repair_swaps,
    stitch,
)
from herdrecord.linking.tails import untangle_tails
from herdrecord.store.record import Record

META_LINK_MODEL = "link_model"


def stored_stitch_model(record: Record) -> StitchModel | None:
    """Return the join model the record holds, if any."""
    data = record.metadata.get(META_LINK_MODEL)
    return StitchModel.from_json(data["stitch"]) if data and "stitch" in data else None


def camera_keys(pen_id: str, t: PenDayTracklets) -> np.ndarray:
    """Return each tracklet's camera key, `pen/camera` (object array)."""
    return np.array([f"{pen_id}/{c}" for c in t.camera.tolist()], dtype=object)


def pen_day_pairs(pen_id: str, t: PenDayTracklets) -> CandidatePairs:
    """Return the candidate joins of one pen-day's tracklets (per camera key)."""
    return candidate_pairs(
        camera_keys(pen_id, t), t.start_s, t.end_s, t.first_xy, t.last_xy, t.descriptor
    )


def fit_stitch_model(record: Record, pen_days: list[tuple[str, PenDayTracklets]]) -> StitchModel:
    """Return the join model for this run: refitted where its pen-days have the data."""
    stored = stored_stitch_model(record)
    by_camera: dict[str, list[CandidatePairs]] = {}
    for pen_id, t in pen_days:
        pairs = pen_day_pairs(pen_id, t)
        keys = camera_keys(pen_id, t)
        for key in sorted(set(keys[pairs.i].tolist())):
            mine = keys[pairs.i] == key
            by_camera.setdefault(key, []).append(_select(pairs, mine))
    everything = [p for parts in by_camera.values() for p in parts]
    pooled = fit_cues(_concat(everything)) if everything else None
    cameras = dict(stored.cameras) if stored else {}
    for key in sorted(by_camera):
        fit = fit_cues(_concat(by_camera[key]))
        if fit is not None:
            cameras[key] = fit
    if pooled is None:
        pooled = stored.pooled if stored else PRIOR_FIT
    version = (stored.version + 1) if stored else 1
    joins = StitchModel(version=version, pooled=pooled, cameras=cameras)
    look = _fit_chain_look(pen_days, joins)
    if look is None:
        look = stored.look if stored else PRIOR_LOOK
    return StitchModel(version=version, pooled=pooled, cameras=cameras, look=look)


def _fit_chain_look(
    pen_days: list[tuple[str, PenDayTracklets]], model: StitchModel
) -> LookFit | None:
    """Fit chain-level appearance on the first pass's chains: their two halves are one animal,
    chains running at the same time in one pen are two."""
    same: list[float] = []
    other: list[float] = []
    for pen_id, t in pen_days:
        label = first_pass(pen_id, t, model)
        for c in np.flatnonzero(np.bincount(label) >= 2):
            members = np.flatnonzero(label == c)  # in time order
            half = len(members) // 2
            a = _centroid(t, members[:half])
            b = _centroid(t, members[half:])
            same.append(float(a @ b))
        ends = chain_ends(
            label, camera_keys(pen_id, t), t.start_s, t.end_s, t.first_xy, t.last_xy,
            t.descriptor, t.weight,
        )  # fmt: skip
        i, j = overlapping_pairs(ends.start_s, ends.end_s, MAX_PAIRS_PER_PEN_DAY)
        other.extend(pair_cosines(ends.descriptor, i, j).tolist())
    return fit_look(np.array(same), np.array(other))


def _centroid(t: PenDayTracklets, rows: np.ndarray) -> np.ndarray:
    summed = (t.descriptor[rows].astype(np.float64) * t.weight[rows, None]).sum(axis=0)
    norm = float(np.linalg.norm(summed))
    return np.asarray(summed / norm if norm > 0 else summed)


def first_pass(pen_id: str, t: PenDayTracklets, model: StitchModel) -> np.ndarray:
    """Return the chains of the calibrated joins alone (before the head count)."""
    pairs = pen_day_pairs(pen_id, t)
    odds = _pair_odds(pairs, camera_keys(pen_id, t), model)
    return chains(stitch(len(t.start_s), pairs, odds), t.start_s)


def _pair_odds(pairs: CandidatePairs, keys: np.ndarray, model: StitchModel) -> np.ndarray:
    """Return each candidate pair's log odds of a join under its camera's fit."""
    odds = np.zeros(len(pairs.i))
    for key in sorted(set(keys[pairs.i].tolist())):
        mine = keys[pairs.i] == key
        fit = model.for_camera(key)
        odds[mine] = fit.log_odds(pairs.gap_s[mine], pairs.distance_px[mine], pairs.sim[mine])
    return odds


def save_stitch_model(record: Record, model: StitchModel) -> None:
    """Keep the run's join model in the record (the caller holds the writer lock)."""
    record.set_metadata(META_LINK_MODEL, {"stitch": model.to_json()})


def describe(model: StitchModel) -> str:
    """Return one line saying what the join model learned (pooled over cameras)."""
    fit = model.pooled
    return (
        f"join model v{model.version} ({len(model.cameras)} cameras, {fit.pairs:,} candidate "
        f"pairs): {fit.join_share:.0%} of track ends re-found, median gap "
        f"{np.exp(fit.gap_log_mean):.0f} s, median displacement "
        f"{np.expm1(fit.place_base + fit.place_per_log_gap * fit.gap_log_mean):.0f} px "
        f"(chance {np.expm1(fit.far_log_mean):.0f} px)"
    )


def stitch_pen_day(pen_id: str, t: PenDayTracklets, model: StitchModel) -> np.ndarray:
    """Return a chain label per tracklet of one pen-day, joined by the model."""
    n = len(t.start_s)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = pen_day_pairs(pen_id, t)
    keys = camera_keys(pen_id, t)
    odds = _pair_odds(pairs, keys, model)
    label = chains(stitch(n, pairs, odds), t.start_s)
    ends = chain_ends(
        label, keys, t.start_s, t.end_s, t.first_xy, t.last_xy, t.descriptor, t.weight
    )
    successor = cover_tracklets(n, pairs, odds, ends, model.cameras, model.pooled, model.look)
    covered = chains(successor, t.start_s)
    tracks = DayTracks(t.start_s, t.end_s, keys, t.first_xy, t.last_xy, t.descriptor, t.weight)
    repaired = repair_swaps(covered, tracks, model.cameras, model.pooled, model.look)
    return untangle_tails(repaired, tracks, model.cameras, model.pooled, model.look)


def _select(pairs: CandidatePairs, mask: np.ndarray) -> CandidatePairs:
    return CandidatePairs(
        pairs.i[mask], pairs.j[mask], pairs.gap_s[mask], pairs.distance_px[mask], pairs.sim[mask]
    )


def _concat(parts: list[CandidatePairs]) -> CandidatePairs:
    # Offsets keep each pen-day's pair indices apart: fitting groups pairs by their end.
    offset = 0
    i, j = [], []
    for p in parts:
        top = int(max(p.i.max(initial=-1), p.j.max(initial=-1))) + 1
        i.append(p.i + offset)
        j.append(p.j + offset)
        offset += top
    return CandidatePairs(
        np.concatenate(i),
        np.concatenate(j),
        np.concatenate([p.gap_s for p in parts]),
        np.concatenate([p.distance_px for p in parts]),
        np.concatenate([p.sim for p in parts]),
    )
