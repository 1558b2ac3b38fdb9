"""Behaviour over a day: time budgets with a day/night rhythm, drawn as bouts per animal.

The true behaviour of each animal is a semi-Markov chain: a bout of one class lasts a
lognormal time with a class-specific mean, and the next class is drawn from the time of
day's budget (shares / mean bout length, so that time shares match the budget).
Lameness, disease and oestrus reshape the budget per animal-day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from herdrecord.simulation.breeding import SowState
from herdrecord.simulation.health import ENTERIC, RESPIRATORY
from herdrecord.store.schema import DEFAULT_BEHAVIOURS

BEHAVIOURS: tuple[str, ...] = DEFAULT_BEHAVIOURS
LYING_LATERAL, LYING_STERNAL, SITTING, STANDING, WALKING = 0, 1, 2, 3, 4
EATING, DRINKING, EXPLORING, INTERACTING = 5, 6, 7, 8
N_CLASSES = 9
LYING = np.array([LYING_LATERAL, LYING_STERNAL])
ACTIVE = np.arange(SITTING, N_CLASSES)

DAY_S = 86_400
BIN_S = 900  # the budget changes every 15 minutes
N_BINS = DAY_S // BIN_S

# Mean bout length per class, seconds: long rests, short walks and drinks.
BOUT_MEAN_S = np.array([1800.0, 900.0, 90.0, 150.0, 45.0, 420.0, 50.0, 150.0, 60.0])
BOUT_SIGMA = 0.8  # lognormal sigma of bout lengths
# Share of the active time per class at rest from feeding (before the feeding peaks).
ACTIVE_BASE = np.array([0.0, 0.0, 0.08, 0.30, 0.10, 0.12, 0.04, 0.26, 0.10])
FEED_PEAK_EXTRA = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.30, 0.03, 0.0, 0.0])

# Mean speed of the bbox centre per class, px/s (1280 px ~ 5 m of pen).
SPEED_MEAN_PX_S = np.array([0.3, 0.5, 1.0, 3.0, 110.0, 4.0, 3.0, 18.0, 22.0])


def _feeding(hours: np.ndarray) -> np.ndarray:
    """Return the feeding drive over the day, 0..~1: peaks at 07:30 and 16:30."""
    morning = np.exp(-0.5 * ((hours - 7.5) / 1.5) ** 2)
    afternoon = 0.9 * np.exp(-0.5 * ((hours - 16.5) / 1.8) ** 2)
    return np.asarray(morning + afternoon, dtype=np.float64)


def _daylight(hours: np.ndarray) -> np.ndarray:
    """Return 0 at night and 1 by day (06:30-19:30), with one-hour ramps."""
    dawn = 1.0 / (1.0 + np.exp(-(hours - 6.5) * 3.0))
    dusk = 1.0 / (1.0 + np.exp((hours - 19.5) * 3.0))
    return np.asarray(dawn * dusk, dtype=np.float64)


def base_budget() -> np.ndarray:
    """Return a healthy grower's time shares per 15-minute bin, shape (96, 9), rows sum to 1.

    Pigs lie ~75 % of the day, ~94 % at night and under half the time at the feeding peaks.
    """
    hours = (np.arange(N_BINS) + 0.5) * BIN_S / 3600.0
    feed, light = _feeding(hours), _daylight(hours)
    active = 0.06 + 0.22 * light + 0.25 * feed
    lateral = 0.55 + 0.15 * (1.0 - light)  # more lateral lying at night
    active_mix = ACTIVE_BASE[None, :] + FEED_PEAK_EXTRA[None, :] * feed[:, None]
    active_mix /= active_mix.sum(axis=1, keepdims=True)
    budget = active[:, None] * active_mix
    budget[:, LYING_LATERAL] = (1.0 - active) * lateral
    budget[:, LYING_STERNAL] = (1.0 - active) * (1.0 - lateral)
    return np.asarray(budget, dtype=np.float64)


def condition_factors(lame: np.ndarray, disease: np.ndarray, sow_state: np.ndarray) -> np.ndarray:
    """Return per-animal multipliers of the budget's class shares, shape (n, 9).

    Lameness (severity 0-3): more lying and sitting, less walking and eating. Disease:
    less eating and activity (enteric: more drinking). Oestrus: restless, eats less.
    """
    n = len(lame)
    f = np.ones((n, N_CLASSES))
    s = lame.astype(np.float64)
    f[:, ACTIVE] *= (1.0 - 0.2 * s)[:, None]
    f[:, WALKING] *= 1.0 - 0.25 * s
    f[:, EATING] *= 1.0 - 0.1 * s
    f[:, SITTING] *= 1.0 + 0.5 * s
    sick = disease > 0
    f[np.ix_(sick, ACTIVE)] *= 0.6
    f[sick, EATING] *= 0.5
    f[disease == RESPIRATORY, DRINKING] *= 0.8
    f[disease == ENTERIC, DRINKING] *= 1.5
    return np.asarray(f * _sow_factors(sow_state), dtype=np.float64)


def _sow_factors(sow_state: np.ndarray) -> np.ndarray:
    """Return the reproductive cycle's multipliers of class shares, shape (n, 9)."""
    f = np.ones((len(sow_state), N_CLASSES))
    heat = sow_state == SowState.OESTRUS
    f[np.ix_(heat, ACTIVE)] *= 1.8
    f[heat, STANDING] *= 1.4
    f[heat, WALKING] *= 1.5
    f[heat, EATING] *= 0.6
    nesting = sow_state == SowState.NESTING
    f[np.ix_(nesting, ACTIVE)] *= 1.6
    f[nesting, EXPLORING] *= 2.0  # rooting and carrying nest material
    farrowing = sow_state == SowState.FARROWING
    f[np.ix_(farrowing, ACTIVE)] *= 0.4
    f[farrowing, LYING_LATERAL] *= 3.0
    nursing = sow_state == SowState.LACTATING
    f[nursing, LYING_LATERAL] *= 1.6
    return f


@dataclass(frozen=True)
class Bouts:
    """True behaviour bouts of one day, sorted by (row, start); arrays of shape (n_bouts,)."""

    row: np.ndarray  # roster row (animal of the day)
    start_s: np.ndarray  # seconds into the day; the first bout of a row starts before 0
    end_s: np.ndarray
    state: np.ndarray  # behaviour class index
    heading_rad: np.ndarray  # body orientation during the bout


def draw_bouts(factors: np.ndarray, rng: np.random.Generator) -> Bouts:
    """Return a day of behaviour bouts for each row of `factors` (n, 9)."""
    n = len(factors)
    shares = base_budget()[None, :, :] * factors[:, None, :]
    shares /= shares.sum(axis=2, keepdims=True)
    # Choosing a class with probability share / mean bout gives time shares ~ the budget.
    choice = shares / BOUT_MEAN_S
    cum = np.cumsum(choice / choice.sum(axis=2, keepdims=True), axis=2)
    mu = np.log(BOUT_MEAN_S) - 0.5 * BOUT_SIGMA**2
    # Start each animal mid-bout so that bouts are not aligned at midnight.
    clock = -rng.uniform(0.0, BOUT_MEAN_S[LYING_LATERAL], n)
    rows, starts, ends, states = [], [], [], []
    idx = np.arange(n)
    while len(idx):
        bins = np.clip(clock[idx] // BIN_S, 0, N_BINS - 1).astype(np.int64)
        u = rng.random(len(idx))
        state = (cum[idx, bins, :] < u[:, None]).sum(axis=1)
        state = np.minimum(state, N_CLASSES - 1)
        length = np.exp(rng.normal(mu[state], BOUT_SIGMA))
        rows.append(idx)
        starts.append(clock[idx])
        clock[idx] += length
        ends.append(clock[idx])
        states.append(state)
        idx = idx[clock[idx] < DAY_S]
    row = np.concatenate(rows)
    order = np.lexsort((np.concatenate(starts), row))
    return Bouts(
        row=row[order],
        start_s=np.concatenate(starts)[order],
        end_s=np.concatenate(ends)[order],
        state=np.concatenate(states)[order],
        heading_rad=rng.uniform(0.0, 2.0 * np.pi, len(row)),
    )


def minutes_per_class(
    bouts: Bouts, n_rows: int, present_from_s: np.ndarray, present_to_s: np.ndarray
) -> np.ndarray:
    """Return minutes per behaviour class while present in the pen, shape (n_rows, 9)."""
    lo = np.maximum(bouts.start_s, present_from_s[bouts.row])
    hi = np.minimum(bouts.end_s, present_to_s[bouts.row])
    seconds = np.clip(hi - lo, 0.0, None)
    flat = np.bincount(
        bouts.row * N_CLASSES + bouts.state, weights=seconds, minlength=n_rows * N_CLASSES
    )
    return flat.reshape(n_rows, N_CLASSES) / 60.0


def bout_index(bouts: Bouts, row: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Return the index of the bout covering each (row, time in seconds) pair."""
    # Rows are separated by more than a day so one sorted key covers them all.
    stride = 4.0 * DAY_S
    keys = bouts.row * stride + bouts.start_s
    return np.asarray(np.searchsorted(keys, row * stride + t_s, side="right") - 1)
