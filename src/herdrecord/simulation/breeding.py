"""The reproductive cycle of a sow: oestrus, insemination, pregnancy, farrowing, weaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from herdrecord.simulation.config import SimulationConfig

HEAT_DAYS = 2  # standing heat lasts ~2 days; insemination on its second day
HEAT_DETECTION = 0.9  # chance the stockperson notices a heat
PREGNANCY_CHECK_DAY = 30  # ultrasound pregnancy check, days after insemination
WEAN_TO_OESTRUS_D = 5.0  # mean days from weaning to the next heat
BORN_ALIVE_SHARE = 0.92  # the rest of a litter is stillborn


class SowState(IntEnum):
    """What a sow's reproductive cycle does to her behaviour today."""

    NONE = 0
    OESTRUS = 1  # restless: more standing and walking, less eating
    NESTING = 2  # the day before farrowing: nest building
    FARROWING = 3  # giving birth: lying on her side
    LACTATING = 4  # nursing: more lateral lying


@dataclass(frozen=True)
class SowEvent:
    """A breeding event of one sow: kind, hour of the day, value and code."""

    kind: str
    hour: float
    value: float | None = None
    code: str | None = None
    note: str = ""


@dataclass
class SowCycle:
    """Track one sow's reproductive phase day by day; the object owns and changes its state."""

    phase: str  # "open", "heat", "pregnant" or "lactating"
    day: int  # days into the phase
    length: int  # days the phase lasts
    cycle_days: float
    detected: bool = False
    conceived: bool = False
    events: list[SowEvent] = field(default_factory=list)

    @classmethod
    def draw(cls, config: SimulationConfig, rng: np.random.Generator) -> SowCycle:
        """Return a sow at a random point of her cycle, as in a herd seen on any one day."""
        u = rng.random()
        cycle = config.oestrus_cycle_days
        if u < 0.55:
            length = _days(rng, config.gestation_days, 1.5)
            return cls("pregnant", int(rng.integers(1, length)), length, cycle, conceived=True)
        if u < 0.7:
            length = _days(rng, config.lactation_days, 2.0)
            return cls("lactating", int(rng.integers(1, length)), length, cycle)
        length = _days(rng, cycle, 1.0)
        return cls("open", int(rng.integers(0, length)), length, cycle)

    def today(self, config: SimulationConfig, rng: np.random.Generator) -> SowState:
        """Return today's state and queue today's events in `events`."""
        self.events = []
        if self.phase == "open" and self.day >= self.length:
            self.phase, self.day, self.length = "heat", 0, HEAT_DAYS
        if self.phase == "heat":
            return self._heat_day(config, rng)
        if self.phase == "pregnant":
            return self._pregnant_day(config, rng)
        if self.phase == "lactating":
            return self._lactating_day(config, rng)
        return SowState.NONE

    def advance(self, config: SimulationConfig, rng: np.random.Generator) -> None:
        """Move the cycle on by one day."""
        self.day += 1
        if self.phase != "heat" or self.day < self.length:
            return
        if self.conceived:
            # Gestation is counted from the insemination on the last heat day.
            length = _days(rng, config.gestation_days, 1.5)
            self.phase, self.day, self.length = "pregnant", 1, length
        else:
            length = _days(rng, self.cycle_days, 1.0)
            self.phase, self.day, self.length = "open", HEAT_DAYS, length

    def _heat_day(self, config: SimulationConfig, rng: np.random.Generator) -> SowState:
        if self.day == 0:
            self.detected = bool(rng.random() < HEAT_DETECTION)
            self.conceived = False
            if self.detected:
                self.events.append(SowEvent("oestrus", 7.0 + rng.random(), note="standing heat"))
        elif self.day == HEAT_DAYS - 1 and self.detected:
            self.conceived = bool(rng.random() < config.conception_rate)
            self.events.append(SowEvent("insemination", 8.0 + 2.0 * rng.random(), code="AI"))
        return SowState.OESTRUS

    def _pregnant_day(self, config: SimulationConfig, rng: np.random.Generator) -> SowState:
        if self.day == PREGNANCY_CHECK_DAY:
            hour = 9.0 + 2.0 * rng.random()
            self.events.append(SowEvent("pregnancy_check", hour, 1.0, "POS", "ultrasound"))
        if self.day == self.length - 1:
            return SowState.NESTING
        if self.day < self.length:
            return SowState.NONE
        born = max(1, int(rng.poisson(config.litter_size_mean)))
        alive = int(rng.binomial(born, BORN_ALIVE_SHARE))
        hour = 24.0 * rng.random()
        self.events.append(SowEvent("farrowing", hour, float(born), None, f"{alive} born alive"))
        length = _days(rng, config.lactation_days, 2.0)
        self.phase, self.day, self.length = "lactating", 0, length
        return SowState.FARROWING

    def _lactating_day(self, config: SimulationConfig, rng: np.random.Generator) -> SowState:
        if self.day < self.length:
            return SowState.LACTATING
        weaned = float(rng.integers(9, 14))
        self.events.append(SowEvent("weaning", 8.0 + rng.random(), weaned, None, "piglets weaned"))
        length = _days(rng, WEAN_TO_OESTRUS_D, 1.0)
        self.phase, self.day, self.length = "open", 0, length
        return SowState.NONE


def _days(rng: np.random.Generator, mean: float, sd: float) -> int:
    """Return a phase length in whole days, at least 2."""
    return max(2, round(rng.normal(mean, sd)))
