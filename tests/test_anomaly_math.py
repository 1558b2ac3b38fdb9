"""The anomaly deviations, computed by sorting and prefix sums, against the plain per-row
definition: an animal's own baseline (mean and sd of its usable days in a lagged window) and
its pen-mates' median and MAD that day, each row left out of its own pen-mates."""

from __future__ import annotations

import numpy as np
import pytest

from herdrecord.days.anomalies import MEASURES, AnomalyConfig, Measure, _own_z, _pen_z

Array = np.ndarray


def _own_reference(
    x: Array, animal: Array, day: Array, usable: Array, measure: Measure, config: AnomalyConfig
) -> Array:
    z = np.full(x.shape, np.nan)
    for row in range(len(x)):
        window = (animal == animal[row]) & usable & np.isfinite(x)
        window &= day >= day[row] - config.lag_days - config.baseline_days
        window &= day < day[row] - config.lag_days
        values = x[window]
        if len(values) >= max(config.min_baseline_days, 2) and np.isfinite(x[row]):
            spread = max(float(np.std(values, ddof=1)), measure.floor)
            z[row] = measure.bad * (x[row] - float(np.mean(values))) / spread
    return z


def _pen_reference(
    x: Array, pen: Array, day: Array, usable: Array, measure: Measure, config: AnomalyConfig
) -> Array:
    z = np.full(x.shape, np.nan)
    valid = usable & np.isfinite(x)
    for row in np.flatnonzero(valid):
        group = valid & (pen == pen[row]) & (day == day[row])
        if group.sum() < config.min_pen_mates + 1:
            continue
        group[row] = False
        mates = x[group]
        centre = float(np.median(mates))
        spread = max(1.4826 * float(np.median(np.abs(mates - centre))), measure.floor)
        z[row] = measure.bad * (x[row] - centre) / spread
    return z


@pytest.mark.parametrize("seed", range(6))
def test_deviations_match_the_plain_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 600))
    animals = rng.integers(0, max(2, n // 15), n)
    animal = np.array([f"P{a:05d}" for a in animals], dtype=object)
    pen = np.array([f"pen-{a % 3}" for a in animals], dtype=object)
    day = rng.integers(20_000, 20_030, n).astype(np.int32)
    x = rng.normal(0.5, 0.1, n)
    if seed % 2:
        x = np.round(x, 1)  # ties in the medians
    x[rng.random(n) < 0.05] = np.nan
    usable = rng.random(n) < 0.9
    config = AnomalyConfig(lag_days=seed % 3, min_baseline_days=1 + seed % 5, min_pen_mates=3)
    for measure in MEASURES[:2]:
        own = _own_z(x, animal, day, usable, measure, config)
        np.testing.assert_allclose(
            own, _own_reference(x, animal, day, usable, measure, config), atol=1e-9
        )
        mates = _pen_z(x, pen, day, usable, measure, config)
        np.testing.assert_allclose(
            mates, _pen_reference(x, pen, day, usable, measure, config), atol=1e-9
        )
        assert np.isfinite(own).any() and np.isfinite(mates).any()  # the cases are exercised
