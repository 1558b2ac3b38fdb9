"""Weight from projected area: a log-log regression calibrated on the record's scale weights.

Projected area grows as weight^(2/3) (a body's silhouette against its volume), so
`log(weight) = a + b·log(area_px)` is fitted to the days that have a scale weight (a `weight`
event) and a standing area. The fit is cheap, so it is made when days are read, from the
events and days of that moment: a new weighing improves every estimate at once, and no stored
estimate ever goes stale. Its error is measured by cross-validation across animals, the way a
new animal would be estimated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

MIN_WEIGHINGS = 8  # fewer pairs of (area, scale weight): no calibration, no estimates
FOLDS = 5


@dataclass(frozen=True)
class WeightCalibration:
    """The area -> weight fit and how well it predicts weights it was not fitted on."""

    intercept: float  # a in log(kg) = a + b log(px^2)
    slope: float  # b; physics says about 1.5
    weighings: int  # (area, scale weight) pairs behind the fit
    animals: int
    cv_mae_kg: float  # mean absolute error on held-out animals, kg
    cv_mape: float  # the same, relative to the scale weight, 0..1

    def estimate_kg(self, area_px: np.ndarray) -> np.ndarray:
        """Return weights (kg) for projected areas (px^2); NaN where the area is missing."""
        area = np.asarray(area_px, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.exp(self.intercept + self.slope * np.log(area)))


def calibration_pairs(days: pa.Table, weights: pa.Table) -> pa.Table:
    """Return (animal_id, area_px, weight_kg): each scale weight with the animal's standing
    area on the same UTC day, or failing that the nearest day within a day either side."""
    con = duckdb.connect()
    con.register("days", days.select(["animal_id", "day", "area_px"]))
    con.register("weights", weights.select(["animal_id", "at", "value"]))
    return con.sql(
        """
        SELECT w.animal_id, arg_min(d.area_px, abs(d.day - CAST(timezone('UTC', w."at") AS DATE)))
                 AS area_px, any_value(w.value) AS weight_kg
        FROM weights w JOIN days d ON d.animal_id = w.animal_id
         AND abs(d.day - CAST(timezone('UTC', w."at") AS DATE)) <= 1
        WHERE d.area_px > 0 AND w.value > 0
        GROUP BY w.animal_id, w."at"
        """
    ).to_arrow_table()


def calibrate(pairs: pa.Table) -> WeightCalibration | None:
    """Fit the regression on (animal_id, area_px, weight_kg) pairs; None with too few."""
    if pairs.num_rows < MIN_WEIGHINGS:
        return None
    animal = np.asarray(pairs.column("animal_id").to_pylist(), dtype=object)
    x = np.log(np.asarray(pairs.column("area_px").to_numpy(), dtype=np.float64))
    y = np.log(np.asarray(pairs.column("weight_kg").to_numpy(), dtype=np.float64))
    if np.ptp(x) < 1e-6:
        return None
    intercept, slope = _fit(x, y)
    errors = _cross_validated_errors(animal, x, y)
    weight = np.exp(y)
    return WeightCalibration(
        intercept=intercept,
        slope=slope,
        weighings=len(y),
        animals=len(np.unique(animal)),
        cv_mae_kg=float(np.mean(np.abs(errors))),
        cv_mape=float(np.mean(np.abs(errors) / weight)),
    )


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def _cross_validated_errors(animal: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return predicted minus scale weight (kg) for each pair, predicted by a fit that did not
    see its animal (animals in `FOLDS` groups); in-sample when there is only one animal."""
    names = np.unique(animal)
    if len(names) < 2:
        intercept, slope = _fit(x, y)
        return np.asarray(np.exp(intercept + slope * x) - np.exp(y))
    fold_of = {name: i % FOLDS for i, name in enumerate(names)}
    fold = np.asarray([fold_of[a] for a in animal])
    predicted = np.empty_like(y)
    for k in range(min(FOLDS, len(names))):
        held = fold == k
        if held.all() or np.ptp(x[~held]) < 1e-6:
            predicted[held] = math.nan
            continue
        intercept, slope = _fit(x[~held], y[~held])
        predicted[held] = intercept + slope * x[held]
    errors = np.exp(predicted) - np.exp(y)
    return np.asarray(errors[np.isfinite(errors)])
