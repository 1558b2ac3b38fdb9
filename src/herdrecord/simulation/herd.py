"""The herd's life day by day: pens, arrivals, moves, sales, deaths, growth, health, breeding.

Everything here is per animal-day; what happens within a day (behaviour, tracking,
appearance) is drawn later, per day, from the `DayRoster` this module plans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from herdrecord.simulation import health, pigs
from herdrecord.simulation.breeding import SowState
from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.pigs import Pig

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


def plan_herd(config: SimulationConfig, rng: np.random.Generator) -> HerdPlan:
    """Return the herd's registry, daily rosters and events for the whole simulation."""
    return _HerdBuilder(config, rng).build()


class _HerdBuilder:
    """Step the herd through the days, collecting rosters and events."""

    def __init__(self, config: SimulationConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.pigs: list[Pig] = []
        self.events: list[HerdEvent] = []
        self.rosters: list[DayRoster] = []

    def build(self) -> HerdPlan:
        """Return the plan of the whole run."""
        self.pigs = pigs.initial_growers(self.config, self.rng)
        if self.config.breeding:
            self.pigs += pigs.initial_sows(len(self.pigs), self.config, self.rng)
        twin_of = self._pair_twins()
        for d in range(self.config.days):
            self._step(d)
        twin_of = np.concatenate([twin_of, np.full(len(self.pigs) - len(twin_of), -1)])
        animals = tuple(self._animal_info(i, twin_of) for i in range(len(self.pigs)))
        events = sorted(self.events, key=lambda e: (e.at_s, e.animal, e.kind))
        return HerdPlan(animals, tuple(self.rosters), tuple(events), twin_of)

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
            pig.grow(d, self.config, self.rng)
            if pig.cycle is not None:
                pig.cycle.advance(self.config, self.rng)

    def _event(
        self,
        pig: Pig,
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

    def _health_onsets(self, present: list[Pig], d: int) -> None:
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

    def _sow_day(self, pig: Pig, d: int) -> SowState:
        assert pig.cycle is not None
        state = pig.cycle.today(self.config, self.rng)
        for ev in pig.cycle.events:
            self._event(pig, d, ev.hour, ev.kind, value=ev.value, code=ev.code, note=ev.note)
        return state

    def _departures(self, present: list[Pig], d: int) -> dict[int, float]:
        """Return the second of the day each departing animal leaves; record sales, deaths."""
        cfg, rng = self.config, self.rng
        leave_s: dict[int, float] = {}
        for pig in present:
            sick = pig.disease_class(d) != health.HEALTHY
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
            leave_s[pig.index] = float(round(hour * HOUR_S))  # the event's second
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
            day = cfg.start + timedelta(days=d)
            pig = pigs.arriving_grower(len(self.pigs), pen, day, cfg, rng)
            self.pigs.append(pig)
            hour = 8.0 + 8.0 * rng.random()
            value = round(pig.weight_kg(), 1)
            self._event(pig, d, hour, "arrival", value=value, code=f"pen-{pen + 1}")
            arrived[pig.index] = float(round(hour * HOUR_S))
        return arrived

    def _health_records(self, present: list[Pig], d: int, leave_s: dict[int, float]) -> None:
        for pig in present:
            for episode in (pig.lameness, pig.disease):
                if episode is None or episode.detect_day != d or not episode.active(d):
                    continue
                for rec in health.detection_records(episode, self.config, self.rng):
                    if rec.hour * HOUR_S >= leave_s.get(pig.index, DAY_S):
                        continue
                    self._event(pig, d, rec.hour, rec.kind, value=rec.value, scale=rec.scale,
                                code=rec.code, note=rec.note, author=rec.author)  # fmt: skip

    def _weigh_and_score(self, present: list[Pig], d: int, leave_s: dict[int, float]) -> None:
        """Weigh every grower and lameness-score every animal, queueing through the morning."""
        cfg, rng = self.config, self.rng
        for k, pig in enumerate(present):
            hour = 9.0 + k * 40.0 / HOUR_S  # ~40 s per pig through the scale
            if hour * HOUR_S >= leave_s.get(pig.index, DAY_S):
                continue
            if pig.role == "grower":
                reading = pig.weight_kg() + rng.normal(0.0, cfg.scale_noise_kg)
                self._event(pig, d, hour, "weight", value=round(reading, 1), author="scale")
            true_score = pig.lame_severity(d)
            score = health.recorded_score(true_score, cfg.score_agreement, rng)
            self._event(pig, d, hour + 0.02, "lameness", value=float(score),
                        scale=health.LAMENESS_SCALE, note="weekly herd scoring")  # fmt: skip

    def _record_roster(
        self,
        d: int,
        present: list[Pig],
        arrived: dict[int, float],
        leave_s: dict[int, float],
        sow_states: dict[int, SowState],
    ) -> None:
        animals = present + [self.pigs[i] for i in arrived]
        lame = [p.lame_severity(d) for p in animals]
        disease = [p.disease_class(d) for p in animals]
        self.rosters.append(
            DayRoster(
                day=d,
                animal=np.array([p.index for p in animals], dtype=np.int64),
                pen=np.array([p.pen for p in animals], dtype=np.int64),
                present_from_s=np.array([arrived.get(p.index, 0.0) for p in animals]),
                present_to_s=np.array([leave_s.get(p.index, float(DAY_S)) for p in animals]),
                weight_kg=np.array([p.weight_kg() for p in animals]),
                lame=np.array(lame, dtype=np.int64),
                disease=np.array(disease, dtype=np.int64),
                sow_state=np.array([sow_states.get(p.index, 0) for p in animals], dtype=np.int64),
            )
        )

    # --- the registry ----------------------------------------------------------------
    def _animal_info(self, i: int, twin_of: np.ndarray) -> AnimalInfo:
        pig = self.pigs[i]
        departed = (
            None if pig.departed_on is None else self.config.start + timedelta(pig.departed_on)
        )
        return AnimalInfo(
            animal_id=animal_id(i),
            tag_id=tag_id(i),
            sex=pig.sex,
            role=pig.role,
            birth_date=pig.birth,
            arrival_date=pig.arrival,
            departure_date=departed,
            departure_kind=pig.departure_kind,
            first_pen=pig.first_pen,
            twin_of=None if twin_of[i] < 0 else int(twin_of[i]),
        )


def animal_id(index: int) -> str:
    """Return the id of animal number `index` ("A0001" ...)."""
    return f"A{index + 1:04d}"


def tag_id(index: int) -> str:
    """Return the ear-tag id of animal number `index` ("TAG-0001" ...)."""
    return f"TAG-{index + 1:04d}"
