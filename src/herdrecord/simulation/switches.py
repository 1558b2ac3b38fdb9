"""Tracker identity switches: a tracklet that jumps from one animal to a pen-mate.

Trackers lose identity when pigs touch or cross: the box stays, the animal under it
changes. Here `identity_switch_share` of tracklets jump, at one of their observations
(never the first), to another animal of the pen present at that moment, and follow it
to the tracklet's end: its later observations, samples and keyframes are of that animal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.herd import DayRoster
from herdrecord.simulation.tracking import Segments


@dataclass(frozen=True)
class Owners:
    """Who each tracklet really is, from the animal under each of its observations."""

    animal_row: np.ndarray  # (S,) roster row of the animal seen longest (the first on a tie)
    switch_at_ms: np.ndarray  # (S,) first observation of another animal, ms into the day; -1


def switch_identities(
    roster: DayRoster,
    segments: Segments,
    obs_segment: np.ndarray,
    obs_t_ms: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return the roster row of the animal under each observation (n_obs,).

    Without switches that is the tracklet's animal. A switch needs a tracklet of two or
    more observations; the chance per such tracklet is set so that about
    `identity_switch_share` of all tracklets switch.
    """
    owner: np.ndarray = np.asarray(segments.row[obs_segment]).copy()
    if config.identity_switch_share <= 0.0 or len(segments) == 0:
        return owner
    count = np.bincount(obs_segment, minlength=len(segments))
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    eligible = np.flatnonzero(count >= 2)
    if len(eligible) == 0:
        return owner
    chance = min(1.0, config.identity_switch_share * len(segments) / len(eligible))
    chosen = eligible[rng.random(len(eligible)) < chance]
    # The switch lands on observation 1 .. count-1 of the tracklet, uniformly.
    step = 1 + np.minimum((rng.random(len(chosen)) * (count[chosen] - 1)).astype(np.int64),
                          count[chosen] - 2)  # fmt: skip
    pick = rng.random(len(chosen))
    rows = np.arange(len(roster.animal))
    for i, k, u in zip(chosen.tolist(), step.tolist(), pick.tolist(), strict=True):
        row = int(segments.row[i])
        at = first[i] + k
        t_s = obs_t_ms[at] / 1000.0
        mates = rows[
            (roster.pen == roster.pen[row])
            & (roster.present_from_s <= t_s)
            & (roster.present_to_s > t_s)
            & (rows != row)
        ]
        if len(mates):
            owner[at : first[i] + count[i]] = mates[min(int(u * len(mates)), len(mates) - 1)]
    return owner


def tracklet_owners(obs_segment: np.ndarray, obs_t_ms: np.ndarray, owner: np.ndarray) -> Owners:
    """Return each tracklet's majority animal (by observations, which are evenly spaced in
    time) and when it first showed another animal."""
    n = int(obs_segment.max(initial=-1)) + 1
    count = np.bincount(obs_segment, minlength=n)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    first_owner = owner[first] if n else owner[:0]
    last_owner = owner[first + count - 1] if n else owner[:0]
    same_as_first = owner == first_owner[obs_segment]
    n_first = np.bincount(obs_segment, weights=same_as_first, minlength=n)
    animal_row = np.where(2 * n_first >= count, first_owner, last_owner)
    switch_at = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    other = ~same_as_first
    np.minimum.at(switch_at, obs_segment[other], obs_t_ms[other])
    switch_at[switch_at == np.iinfo(np.int64).max] = -1
    return Owners(animal_row=np.asarray(animal_row, dtype=np.int64), switch_at_ms=switch_at)
