"""Gompertz growth of grow-finish pigs: weight (kg) from age (days) and back."""

from __future__ import annotations

import numpy as np

from herdrecord.simulation.config import SimulationConfig

NURSERY_EXIT_AGE_D = 70.0  # pigs leave the nursery at ~10 weeks ...
NURSERY_EXIT_KG = 30.0  # ... weighing ~30 kg


def inflection_age_d(mature_kg: np.ndarray, rate_per_day: np.ndarray) -> np.ndarray:
    """Return the Gompertz inflection age (days) that puts 30 kg at 70 days of age."""
    inflection = NURSERY_EXIT_AGE_D + np.log(np.log(mature_kg / NURSERY_EXIT_KG)) / rate_per_day
    return np.asarray(inflection, dtype=np.float64)


def weight_kg(
    age_d: np.ndarray, mature_kg: np.ndarray, rate_per_day: np.ndarray, inflection_d: np.ndarray
) -> np.ndarray:
    """Return Gompertz weight in kg at the given (effective) age in days."""
    weight = mature_kg * np.exp(-np.exp(-rate_per_day * (age_d - inflection_d)))
    return np.asarray(weight, dtype=np.float64)


def age_d(
    weight: np.ndarray, mature_kg: np.ndarray, rate_per_day: np.ndarray, inflection_d: np.ndarray
) -> np.ndarray:
    """Return the (effective) age in days at which the Gompertz curve reaches `weight` kg."""
    age = inflection_d - np.log(np.log(mature_kg / weight)) / rate_per_day
    return np.asarray(age, dtype=np.float64)


def draw_curves(
    n: int, config: SimulationConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per-animal Gompertz (mature kg, rate per day, inflection age d), shape (n,)."""
    cv = config.growth_animal_cv
    mature = config.mature_weight_kg * np.exp(rng.normal(0.0, cv, n))
    rate = config.growth_rate_per_day * np.exp(rng.normal(0.0, cv, n))
    # Keep every curve able to reach the sale weight with room to spare.
    mature = np.maximum(mature, config.sale_weight_kg * 1.6)
    return mature, rate, inflection_age_d(mature, rate)
