"""The herd's life day by day: pens, arrivals, moves, sales, deaths, growth, health, breeding.

Everything here is per animal-day; what happens within a day (behaviour, tracking,
appearance) is drawn later, per day, from the `DayRoster` this module plans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from herdrecord.simulation import growth, health
from herdrecord.simulation.breeding import SowCycle, SowState
from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.health import Episode

DAY_S = 86_400
HOUR_S = 3_600


@dataclass(frozen=True)
class HerdEvent:
    """One ground-truth event: who, what, when (seconds since the simulation start)."""

    animal: int
    kind: str
    at_s: float
    value: float | None = None
    scale: str | None = None
    code: str | None = None
    note: str = ""
    author: str = "stockperson"


@dataclass(frozen=True)
class AnimalInfo:
    """The registry facts of one animal, as a farm admin would enter them."""

    animal_id: str
    tag_id: str
    sex: str
    role: str  # "grower" or "sow"
    birth_date: date
    arrival_date: date
    departure_date: date | None
    departure_kind: str | None  # "sale" or "death"
    first_pen: int
    twin_of: int | None


@dataclass(frozen=True)
class DayRoster:
    """The animals in the barn on one day; arrays of shape (n,), one row per animal."""

    day: int
    animal: np.ndarray  # animal index
    pen: np.ndarray  # pen index
    present_from_s: np.ndarray  # seconds into the day the animal is first there
    present_to_s: np.ndarray  # seconds into the day it leaves (86400 if it stays)
    weight_kg: np.ndarray
    lame: np.ndarray  # lameness severity, 0 (sound) .. 3 (severely lame)
    disease: np.ndarray  # 0 healthy, 1 respiratory, 2 enteric
    sow_state: np.ndarray  # SowState


@dataclass(frozen=True)
class HerdPlan:
    """The whole herd over the whole simulation: registry, daily rosters, events."""

    animals: tuple[AnimalInfo, ...]
    days: tuple[DayRoster, ...]
    events: tuple[HerdEvent, ...]
    twin_of: np.ndarray  # (n_animals,) index of the near-twin, -1 if none


@dataclass(frozen=True)
class _Registry:
    """What the registry knows of an animal when it enters the plan."""

    sex: str
    birth: date
    arrival: date
    first_pen: int


@dataclass
class _Pig:
    """Mutable state of one animal while the plan is being built."""

    index: int
    role: str
    pen: int
    present: bool
    mature_kg: float
    rate_per_day: float
    inflection_d: float
    age_d: float  # effective age on the growth curve; sickness slows it
    sale_kg: float
    base_kg: float = 0.0  # sows: weight outside pregnancy
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
        # Sows gain ~0.25 kg/day in gestation and lose condition while nursing.
        if self.cycle.phase == "pregnant":
            return self.base_kg + 0.25 * self.cycle.day
        if self.cycle.phase == "lactating":
            return self.base_kg - 0.5 * self.cycle.day
        return self.base_kg


def plan_herd(config: SimulationConfig, rng: np.random.Generator) -> HerdPlan:
    """Return the herd's registry, daily rosters and events for the whole simulation."""
    return _HerdBuilder(config, rng).build()


class _HerdBuilder:
    """Step the herd through the days, collecting rosters and events."""

    def __init__(self, config: SimulationConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.pigs: list[_Pig] = []
        self.registry: list[_Registry] = []
        self.events: list[HerdEvent] = []
        self.rosters: list[DayRoster] = []

    def build(self) -> HerdPlan:
        self._initial_growers()
        if self.config.breeding:
            self._initial_sows()
        twin_of = self._pair_twins()
        for d in range(self.config.days):
            self._step(d)
        twin_of = np.concatenate([twin_of, np.full(len(self.pigs) - len(twin_of), -1)])
        animals = tuple(self._animal_info(i, twin_of) for i in range(len(self.pigs)))
        events = sorted(self.events, key=lambda e: (e.at_s, e.animal, e.kind))
        return HerdPlan(animals, tuple(self.rosters), tuple(events), twin_of)

    # --- the herd on day 1 -----------------------------------------------------------
    def _initial_growers(self) -> None:
        cfg, rng = self.config, self.rng
        n = cfg.animals
        pen = np.arange(n) * cfg.pens // max(n, 1)  # contiguous, even blocks per pen
        lo, hi = cfg.initial_weight_kg
        cohort_kg = lo + (hi - lo) * pen / max(cfg.pens - 1, 1)
        weight = np.clip(cohort_kg + rng.normal(0.0, cfg.pen_weight_sd_kg, n), 8.0, None)
        mature, rate, inflection = growth.draw_curves(n, cfg, rng)
        weight = np.minimum(weight, 0.9 * mature)
        ages = growth.age_d(weight, mature, rate, inflection)
        sale = rng.normal(cfg.sale_weight_kg, cfg.sale_weight_sd_kg, n)
        sexes = rng.random(n) < 0.5
        for i in range(n):
            age = float(ages[i])
            in_barn_d = max(0.0, age - growth.NURSERY_EXIT_AGE_D)
            self._add(
                _Pig(i, "grower", int(pen[i]), True, float(mature[i]), float(rate[i]),
                     float(inflection[i]), age, float(sale[i])),
                sex="female" if sexes[i] else "male",
                birth=cfg.start - timedelta(days=round(age)),
                arrival=cfg.start - timedelta(days=round(in_barn_d)),
            )  # fmt: skip

    def _initial_sows(self) -> None:
        cfg, rng = self.config, self.rng
        for k in range(cfg.sows):
            index = len(self.pigs)
            parity = int(rng.integers(1, 7))
            age_d = 240 + 150 * parity + int(rng.integers(0, 60))
            pig = _Pig(index, "sow", cfg.pens + k % cfg.sow_pens, True, 0.0, 0.0, 0.0, age_d, 0.0)
            pig.base_kg = float(rng.normal(200.0 + 10.0 * parity, 12.0))
            pig.cycle = SowCycle.draw(cfg, rng)
            self._add(
                pig,
                sex="female",
                birth=cfg.start - timedelta(days=age_d),
                arrival=cfg.start - timedelta(days=age_d - 210),
            )

    def _add(self, pig: _Pig, sex: str, birth: date, arrival: date) -> None:
        self.pigs.append(pig)
        self.registry.append(_Registry(sex, birth, arrival, pig.pen))

    def _pair_twins(self) -> np.ndarray:
        """Return each animal's near-twin index (-1 if none); twins come in pairs."""
        n = len(self.pigs)
        twin_of = np.full(n, -1, dtype=np.int64)
        n_pairs = round(self.config.near_twin_share * self.config.animals / 2)
        if n_pairs == 0 or self.config.animals < 2:
            return twin_of
        chosen = self.rng.permutation(self.config.animals)[: 2 * n_pairs]
        for a, b in zip(chosen[0::2], chosen[1::2], strict=True):
            first, second = sorted((int(a), int(b)))
            twin_of[second] = first
        return twin_of

    # --- one day ---------------------------------------------------------------------
    def _step(self, d: int) -> None:
        if d > 0:
            self._moves(d)
        present = [p for p in self.pigs if p.present]
        self._health_onsets(present, d)
        sow_states = {p.index: self._sow_day(p, d) for p in present if p.cycle is not None}
        leave_s = self._departures(present, d)
        arrived = self._arrivals(d)
        self._health_records(present, d, leave_s)
        if d % self.config.weigh_every_days == 0:
            self._weigh_and_score(present, d, leave_s)
        self._record_roster(d, present, arrived, leave_s, sow_states)
        for pig in present:
            self._grow(pig, d)
            if pig.cycle is not None:
                pig.cycle.advance(self.config, self.rng)

    def _event(
        self,
        pig: _Pig,
        d: int,
        hour: float,
        kind: str,
        value: float | None = None,
        scale: str | None = None,
        code: str | None = None,
        note: str = "",
        author: str = "stockperson",
    ) -> None:
        at_s = float(d * DAY_S + round(hour * HOUR_S))
        self.events.append(HerdEvent(pig.index, kind, at_s, value, scale, code, note, author))

    def _moves(self, d: int) -> None:
        """Move some growers to another pen at midnight, so each animal has one pen per day."""
        cfg = self.config
        if cfg.pens < 2:
            return
        for pig in self.pigs:
            if not (pig.present and pig.role == "grower"):
                continue
            if self.rng.random() >= cfg.move_rate_per_day:
                continue
            old = pig.pen
            pig.pen = (old + 1 + int(self.rng.integers(0, cfg.pens - 1))) % cfg.pens
            note = f"from pen-{old + 1} to pen-{pig.pen + 1}"
            self._event(pig, d, 0.0, "move", code=f"pen-{pig.pen + 1}", note=note)

    def _health_onsets(self, present: list[_Pig], d: int) -> None:
        cfg, rng = self.config, self.rng
        sick_pens = {p.pen for p in present if p.disease is not None and p.disease.active(d)}
        for pig in present:
            if (pig.lameness is None or pig.lameness.end_day <= d) and (
                rng.random() < cfg.lameness_rate_per_day
            ):
                pig.lameness = health.draw_lameness(d, cfg, rng)
            rate = cfg.disease_rate_per_day * (cfg.pen_contagion if pig.pen in sick_pens else 1.0)
            if (pig.disease is None or pig.disease.end_day <= d) and rng.random() < rate:
                pig.disease = health.draw_disease(d, cfg, rng)

    def _sow_day(self, pig: _Pig, d: int) -> SowState:
        assert pig.cycle is not None
        state = pig.cycle.today(self.config, self.rng)
        for ev in pig.cycle.events:
            self._event(pig, d, ev.hour, ev.kind, value=ev.value, code=ev.code, note=ev.note)
        return state

    def _departures(self, present: list[_Pig], d: int) -> dict[int, float]:
        """Return the second of the day each departing animal leaves; record sales, deaths."""
        cfg, rng = self.config, self.rng
        leave_s: dict[int, float] = {}
        for pig in present:
            sick = _active(pig.disease, d)
            death_p = cfg.death_rate_per_day * (cfg.sick_death_factor if sick else 1.0)
            kind: str | None = None
            if rng.random() < death_p:
                kind, hour = "death", 24.0 * rng.random()
            elif pig.role == "grower" and pig.weight_kg() >= pig.sale_kg:
                kind, hour = "sale", 7.0 + 4.0 * rng.random()  # the truck comes in the morning
            if kind is None:
                continue
            cause = pig.disease.code if sick and pig.disease is not None else "UNKNOWN"
            code = cause if kind == "death" else None
            self._event(pig, d, hour, kind, value=round(pig.weight_kg(), 1), code=code)
            leave_s[pig.index] = hour * HOUR_S
            pig.present, pig.departed_on, pig.departure_kind = False, d, kind
        return leave_s

    def _arrivals(self, d: int) -> dict[int, float]:
        """Add this day's new growers to the emptiest pens; return their arrival seconds."""
        cfg, rng = self.config, self.rng
        arrived: dict[int, float] = {}
        for _ in range(int(rng.poisson(cfg.arrival_rate_per_day))):
            counts = np.bincount(
                [p.pen for p in self.pigs if p.present and p.role == "grower"],
                minlength=cfg.pens,
            )
            pen = int(np.argmin(counts[: cfg.pens]))
            mature, rate, inflection = growth.draw_curves(1, cfg, rng)
            weight = np.maximum(rng.normal(cfg.arrival_weight_kg, 2.5, 1), 15.0)
            age = float(growth.age_d(weight, mature, rate, inflection)[0])
            index = len(self.pigs)
            sale = float(rng.normal(cfg.sale_weight_kg, cfg.sale_weight_sd_kg))
            pig = _Pig(index, "grower", pen, True, float(mature[0]), float(rate[0]),
                       float(inflection[0]), age, sale)  # fmt: skip
            day = cfg.start + timedelta(days=d)
            sex = "female" if rng.random() < 0.5 else "male"
            self._add(pig, sex=sex, birth=day - timedelta(days=round(age)), arrival=day)
            hour = 8.0 + 8.0 * rng.random()
            value = round(float(weight[0]), 1)
            self._event(pig, d, hour, "arrival", value=value, code=f"pen-{pen + 1}")
            arrived[index] = hour * HOUR_S
        return arrived

    def _health_records(self, present: list[_Pig], d: int, leave_s: dict[int, float]) -> None:
        for pig in present:
            for episode in (pig.lameness, pig.disease):
                if episode is None or episode.detect_day != d or not episode.active(d):
                    continue
                for rec in health.detection_records(episode, self.config, self.rng):
                    if rec.hour * HOUR_S >= leave_s.get(pig.index, DAY_S):
                        continue
                    self._event(pig, d, rec.hour, rec.kind, value=rec.value, scale=rec.scale,
                                code=rec.code, note=rec.note, author=rec.author)  # fmt: skip

    def _weigh_and_score(self, present: list[_Pig], d: int, leave_s: dict[int, float]) -> None:
        """Weigh every grower and lameness-score every animal, queueing through the morning."""
        cfg, rng = self.config, self.rng
        for k, pig in enumerate(present):
            hour = 9.0 + k * 40.0 / HOUR_S  # ~40 s per pig through the scale
            if hour * HOUR_S >= leave_s.get(pig.index, DAY_S):
                continue
            if pig.role == "grower":
                reading = pig.weight_kg() + rng.normal(0.0, cfg.scale_noise_kg)
                self._event(pig, d, hour, "weight", value=round(reading, 1), author="scale")
            true_score = _severity(pig.lameness, d)
            score = health.recorded_score(true_score, cfg.score_agreement, rng)
            self._event(pig, d, hour + 0.02, "lameness", value=float(score),
                        scale=health.LAMENESS_SCALE, note="weekly herd scoring")  # fmt: skip

    def _record_roster(
        self,
        d: int,
        present: list[_Pig],
        arrived: dict[int, float],
        leave_s: dict[int, float],
        sow_states: dict[int, SowState],
    ) -> None:
        pigs = present + [self.pigs[i] for i in arrived]
        lame = [_severity(p.lameness, d) for p in pigs]
        disease = [_disease_class(p.disease, d) for p in pigs]
        self.rosters.append(
            DayRoster(
                day=d,
                animal=np.array([p.index for p in pigs], dtype=np.int64),
                pen=np.array([p.pen for p in pigs], dtype=np.int64),
                present_from_s=np.array([arrived.get(p.index, 0.0) for p in pigs]),
                present_to_s=np.array([leave_s.get(p.index, float(DAY_S)) for p in pigs]),
                weight_kg=np.array([p.weight_kg() for p in pigs]),
                lame=np.array(lame, dtype=np.int64),
                disease=np.array(disease, dtype=np.int64),
                sow_state=np.array([sow_states.get(p.index, 0) for p in pigs], dtype=np.int64),
            )
        )

    def _grow(self, pig: _Pig, d: int) -> None:
        """Advance a grower's effective age by one day, slowed by lameness or disease."""
        cfg = self.config
        if pig.cycle is not None:
            return
        sigma = cfg.daily_gain_cv
        factor = float(np.exp(self.rng.normal(-0.5 * sigma**2, sigma)))
        if _active(pig.disease, d):
            factor *= cfg.sick_growth_factor
        factor *= 1.0 - 0.15 * _severity(pig.lameness, d)
        pig.age_d += factor

    # --- the registry ----------------------------------------------------------------
    def _animal_info(self, i: int, twin_of: np.ndarray) -> AnimalInfo:
        pig, reg = self.pigs[i], self.registry[i]
        departed = (
            None if pig.departed_on is None else self.config.start + timedelta(pig.departed_on)
        )
        return AnimalInfo(
            animal_id=animal_id(i),
            tag_id=tag_id(i),
            sex=reg.sex,
            role=pig.role,
            birth_date=reg.birth,
            arrival_date=reg.arrival,
            departure_date=departed,
            departure_kind=pig.departure_kind,
            first_pen=reg.first_pen,
            twin_of=None if twin_of[i] < 0 else int(twin_of[i]),
        )


def animal_id(index: int) -> str:
    """Return the id of animal number `index` ("A0001" ...)."""
    return f"A{index + 1:04d}"


def tag_id(index: int) -> str:
    """Return the ear-tag id of animal number `index` ("TAG-0001" ...)."""
    return f"TAG-{index + 1:04d}"


def _active(episode: Episode | None, d: int) -> bool:
    return episode is not None and episode.active(d)


def _disease_class(episode: Episode | None, d: int) -> int:
    if episode is None or not episode.active(d):
        return health.HEALTHY
    return health.RESPIRATORY if episode.kind == "respiratory" else health.ENTERIC


def _severity(lameness: Episode | None, d: int) -> int:
    return lameness.severity if lameness is not None and lameness.active(d) else 0
