"""Anomaly flags on animal-days: deviation from the animal's own recent days and its pen-mates.

For each measure a day gets two deviations, signed so that the direction illness takes it is
positive: from the animal's own baseline (mean and sd of its days before, skipping the most
recent `lag_days` so an episode's first days do not hide its later ones) and from its
pen-mates that same day (median and MAD). The day is flagged when their mean reaches `z`
(the own deviation alone when the pen is too small to compare). Averaging the two damps
pen-wide changes (weather, a feed change) and an animal's habitual oddness; requiring both
separately missed two thirds of sick days on the simulator for little gain in precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Measure:
    """One day figure watched for anomalies, and the direction that is bad."""

    name: str  # flag prefix, e.g. lying -> lying_up
    column: str  # a column of the frame handed to `flag_days`
    bad: int  # +1 when a rise is bad, -1 when a fall is
    floor: float  # smallest spread used, in the column's unit (noise below it is ignored)


MEASURES: tuple[Measure, ...] = (
    Measure("lying", "lying_share", +1, 0.02),
    Measure("activity", "activity_index", -1, 0.015),
    Measure("eating", "eating_share", -1, 0.008),
    Measure("walking_speed", "walking_speed_px_s", -1, 6.0),
    Measure("gait", "gait_mean", +1, 0.15),
)


@dataclass(frozen=True)
class AnomalyConfig:
    """How anomalies are decided."""

    # Tuned on the simulator (40 pigs, 28 days, frequent episodes): 3 % of healthy days
    # flagged, 34 % of sick days, 96-100 % of lame days.
    z: float = 2.5  # sigma, mean of the own-baseline and pen-mate deviations
    baseline_days: int = 14  # days of the animal's own baseline
    lag_days: int = 2  # most recent days left out of the baseline
    min_baseline_days: int = 5  # fewer baseline days: no flag
    min_pen_mates: int = 4  # fewer animals in the pen that day: no flag
    min_observed_min: float = 360.0  # less observed time that day: no flag


@dataclass(frozen=True)
class Flags:
    """Flags of the rows handed to `flag_days`, in their order."""

    anomalies: list[list[str]]
    anomaly_z: list[float | None]  # largest deviation (mean of own and pen) over the measures


def flag_days(frame: pa.Table, config: AnomalyConfig) -> Flags:
    """Return the flags of every row of `frame` (animal_id, day, pen_id, observed_min and the
    measure columns), using the other rows of `frame` as baselines and pen-mates."""
    n = frame.num_rows
    if n == 0:
        return Flags([], [])
    animal = np.asarray(frame.column("animal_id").to_pylist(), dtype=object)
    pen = np.asarray(frame.column("pen_id").to_pylist(), dtype=object)
    day = np.asarray(frame.column("day").cast(pa.int32()).to_numpy(zero_copy_only=False))
    enough = _values(frame, "observed_min") >= config.min_observed_min
    flags: list[list[str]] = [[] for _ in range(n)]
    best = np.full(n, -np.inf)
    for measure in MEASURES:
        if measure.column not in frame.column_names:
            continue
        x = _values(frame, measure.column)
        own = _own_z(x, animal, day, enough, measure, config)
        mates = _pen_z(x, pen, day, enough, measure, config)
        deviation = np.where(np.isnan(mates), own, (own + mates) / 2)
        best = np.fmax(best, deviation)
        for row in np.flatnonzero(enough & (deviation >= config.z)):
            flags[row].append(f"{measure.name}_{'up' if measure.bad > 0 else 'down'}")
    scores = [None if not np.isfinite(b) else round(float(b), 2) for b in best]
    return Flags(flags, scores)


def _values(frame: pa.Table, column: str) -> np.ndarray:
    values = frame.column(column).cast(pa.float64()).fill_null(float("nan"))
    return np.asarray(values.to_numpy(), dtype=np.float64)


def _own_z(
    x: np.ndarray,
    animal: np.ndarray,
    day: np.ndarray,
    usable: np.ndarray,
    measure: Measure,
    config: AnomalyConfig,
) -> np.ndarray:
    """Return each row's signed deviation (bad direction positive) from its own baseline:
    the mean and sd of the animal's usable days in [day - lag - baseline, day - lag).

    One sort by (animal, day) and prefix sums: each row's window is two binary searches."""
    z = np.full(x.shape, np.nan)
    _, code = np.unique(animal, return_inverse=True)
    key = code.astype(np.int64) << 32 | (day.astype(np.int64) & 0xFFFFFFFF)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    value = x[order]
    counted = usable[order] & np.isfinite(value)
    kept = np.where(counted, value, 0.0)
    # Deviations from one global centre keep the running sums of squares well conditioned.
    centre = float(np.mean(kept[counted])) if counted.any() else 0.0
    shifted = np.where(counted, kept - centre, 0.0)
    count = np.concatenate([[0], np.cumsum(counted)])
    total = np.concatenate([[0.0], np.cumsum(shifted)])
    squares = np.concatenate([[0.0], np.cumsum(shifted**2)])
    base = key - (config.lag_days + config.baseline_days)
    lo = np.searchsorted(sorted_key, base, side="left")
    hi = np.searchsorted(sorted_key, key - config.lag_days, side="left")
    n = count[hi] - count[lo]
    ok = (n >= max(config.min_baseline_days, 2)) & np.isfinite(x)
    s1 = total[hi] - total[lo]
    s2 = squares[hi] - squares[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        variance = np.maximum(s2 - s1 * mean, 0.0) / (n - 1)
        spread = np.maximum(np.sqrt(variance), measure.floor)
        z[ok] = measure.bad * (x[ok] - centre - mean[ok]) / spread[ok]
    return z


# Rows of pen-mates compared at once in one pen-day: a bound on the (rows, mates) block.
PEN_BLOCK_CELLS = 1_000_000


def _pen_z(
    x: np.ndarray,
    pen: np.ndarray,
    day: np.ndarray,
    usable: np.ndarray,
    measure: Measure,
    config: AnomalyConfig,
) -> np.ndarray:
    """Return each row's signed deviation from its pen-mates' median that day (robust): the
    median and MAD of the other usable rows of its pen-day, each row left out of its own."""
    z = np.full(x.shape, np.nan)
    valid = np.flatnonzero(usable & np.isfinite(x))
    if len(valid) == 0:
        return z
    _, pen_code = np.unique(pen[valid], return_inverse=True)
    group = pen_code.astype(np.int64) << 32 | (day[valid].astype(np.int64) & 0xFFFFFFFF)
    order = np.lexsort((x[valid], group))  # by pen-day, then value
    rows, group = valid[order], group[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    for start, end in zip(starts, ends, strict=True):
        k = end - start
        if k < config.min_pen_mates + 1:
            continue
        members = rows[start:end]
        values = x[members]  # ascending
        # Each row's mates: the sorted values without it, one row per member.
        mates_index = np.arange(k - 1)
        step = max(1, PEN_BLOCK_CELLS // k)
        for first in range(0, k, step):
            own = np.arange(first, min(first + step, k))
            mates = values[mates_index[None, :] + (mates_index[None, :] >= own[:, None])]
            centre = np.median(mates, axis=1)
            mad = np.median(np.abs(mates - centre[:, None]), axis=1)
            spread = np.maximum(1.4826 * mad, measure.floor)
            z[members[own]] = measure.bad * (values[own] - centre) / spread
    return z
