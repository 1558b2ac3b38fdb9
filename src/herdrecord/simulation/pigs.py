"""One animal's state while the herd is planned, and how animals enter the barn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from herdrecord.simulation import growth, health
from herdrecord.simulation.breeding import SowCycle
from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.health import Episode

SOW_GESTATION_GAIN_KG_D = 0.25  # sows put on weight while pregnant ...
SOW_LACTATION_LOSS_KG_D = 0.5  # ... and lose condition while nursing
LAMENESS_GROWTH_LOSS = 0.15  # growth lost per lameness severity step


@dataclass
class Pig:
    """The changing state of one animal while the plan is built; the builder owns it."""

    index: int
    role: str  # "grower" or "sow"
    pen: int
    sex: str
    birth: date
    arrival: date
    first_pen: int
    age_d: float  # effective age on the growth curve; lameness and disease slow it
    mature_kg: float = 0.0  # growers: Gompertz curve
    rate_per_day: float = 0.0
    inflection_d: float = 0.0
    sale_kg: float = float("inf")
    base_kg: float = 0.0  # sows: weight outside pregnancy
    present: bool = True
    lameness: Episode | None = None
    disease: Episode | None = None
    cycle: SowCycle | None = None
    departed_on: int | None = None
    departure_kind: str | None = None

    def weight_kg(self) -> float:
        """Return today's true weight in kg."""
        if self.cycle is None:
            curve = np.array([self.age_d, self.mature_kg, self.rate_per_day, self.inflection_d])
            return float(growth.weight_kg(*curve))
        if self.cycle.phase == "pregnant":
            return self.base_kg + SOW_GESTATION_GAIN_KG_D * self.cycle.day
        if self.cycle.phase == "lactating":
            return self.base_kg - SOW_LACTATION_LOSS_KG_D * self.cycle.day
        return self.base_kg

    def lame_severity(self, day: int) -> int:
        """Return the lameness severity on `day`, 0 (sound) .. 3."""
        lameness = self.lameness
        return lameness.severity if lameness is not None and lameness.active(day) else 0

    def disease_class(self, day: int) -> int:
        """Return HEALTHY, RESPIRATORY or ENTERIC on `day`."""
        disease = self.disease
        if disease is None or not disease.active(day):
            return health.HEALTHY
        return health.RESPIRATORY if disease.kind == "respiratory" else health.ENTERIC

    def grow(self, day: int, config: SimulationConfig, rng: np.random.Generator) -> None:
        """Advance a grower's effective age by one day, slowed by lameness or disease."""
        if self.cycle is not None:
            return
        sigma = config.daily_gain_cv
        factor = float(np.exp(rng.normal(-0.5 * sigma**2, sigma)))
        if self.disease_class(day) != health.HEALTHY:
            factor *= config.sick_growth_factor
        factor *= 1.0 - LAMENESS_GROWTH_LOSS * self.lame_severity(day)
        self.age_d += factor


def initial_growers(config: SimulationConfig, rng: np.random.Generator) -> list[Pig]:
    """Return the grow-finish pigs of day 1: one weight cohort per pen, lightest in pen-1."""
    n = config.animals
    pen = np.arange(n) * config.pens // max(n, 1)  # contiguous, even blocks per pen
    lo, hi = config.initial_weight_kg
    cohort_kg = lo + (hi - lo) * pen / max(config.pens - 1, 1)
    weight = np.clip(cohort_kg + rng.normal(0.0, config.pen_weight_sd_kg, n), 8.0, None)
    mature, rate, inflection = growth.draw_curves(n, config, rng)
    ages = growth.age_d(np.minimum(weight, 0.9 * mature), mature, rate, inflection)
    sale = rng.normal(config.sale_weight_kg, config.sale_weight_sd_kg, n)
    female = rng.random(n) < 0.5
    pigs = []
    for i in range(n):
        age = float(ages[i])
        in_barn_d = max(0.0, age - growth.NURSERY_EXIT_AGE_D)
        pigs.append(
            Pig(
                index=i,
                role="grower",
                pen=int(pen[i]),
                sex="female" if female[i] else "male",
                birth=config.start - timedelta(days=round(age)),
                arrival=config.start - timedelta(days=round(in_barn_d)),
                first_pen=int(pen[i]),
                age_d=age,
                mature_kg=float(mature[i]),
                rate_per_day=float(rate[i]),
                inflection_d=float(inflection[i]),
                sale_kg=float(sale[i]),
            )
        )
    return pigs


def initial_sows(first_index: int, config: SimulationConfig, rng: np.random.Generator) -> list[Pig]:
    """Return the breeding herd: sows of parity 1-6 at random points of their cycle."""
    sows = []
    for k in range(config.sows):
        parity = int(rng.integers(1, 7))
        age_d = 240 + 150 * parity + int(rng.integers(0, 60))  # first litter at ~1 year
        pen = config.pens + k % config.sow_pens
        sows.append(
            Pig(
                index=first_index + k,
                role="sow",
                pen=pen,
                sex="female",
                birth=config.start - timedelta(days=age_d),
                arrival=config.start - timedelta(days=age_d - 210),  # gilts enter at ~7 months
                first_pen=pen,
                age_d=float(age_d),
                base_kg=float(rng.normal(200.0 + 10.0 * parity, 12.0)),
                cycle=SowCycle.draw(config, rng),
            )
        )
    return sows


def arriving_grower(
    index: int, pen: int, day: date, config: SimulationConfig, rng: np.random.Generator
) -> Pig:
    """Return a pig arriving from the nursery at ~30 kg."""
    mature, rate, inflection = growth.draw_curves(1, config, rng)
    weight = np.maximum(rng.normal(config.arrival_weight_kg, 2.5, 1), 15.0)
    age = float(growth.age_d(weight, mature, rate, inflection)[0])
    return Pig(
        index=index,
        role="grower",
        pen=pen,
        sex="female" if rng.random() < 0.5 else "male",
        birth=day - timedelta(days=round(age)),
        arrival=day,
        first_pen=pen,
        age_d=age,
        mature_kg=float(mature[0]),
        rate_per_day=float(rate[0]),
        inflection_d=float(inflection[0]),
        sale_kg=float(rng.normal(config.sale_weight_kg, config.sale_weight_sd_kg)),
    )
