"""Lameness and disease episodes, and the records a farm keeps of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from herdrecord.simulation.config import SimulationConfig

HEALTHY, RESPIRATORY, ENTERIC = 0, 1, 2
LAMENESS_SCALE = "0-3"  # pigs/sows, e.g. Zinpro Feet First

# Causes and their shares; the codes are what a vet would write on the diagnosis.
LAMENESS_CAUSES = (("INJURY", 0.55), ("STREP", 0.3), ("GLAESSER", 0.15))
RESPIRATORY_CAUSES = (("MHYO", 0.4), ("PRRS", 0.35), ("FLU", 0.25))
ENTERIC_CAUSES = (("ECOLI", 0.6), ("BRACHY", 0.4))
RESPIRATORY_SHARE = 0.6  # of disease episodes; the rest are enteric
TREATMENT_OF = {
    "INJURY": "MELOXICAM",  # anti-inflammatory
    "STREP": "AMOXICILLIN",
    "GLAESSER": "AMOXICILLIN",
    "MHYO": "TULATHROMYCIN",
    "PRRS": "TULATHROMYCIN",  # viral: treat secondary bacterial infection
    "FLU": "MELOXICAM",
    "ECOLI": "AMOXICILLIN",
    "BRACHY": "TIAMULIN",
}
SEVERITY_SHARES = (0.5, 0.35, 0.15)  # lameness severity 1, 2, 3 at onset
DETECTION_DELAY_SHARES = (0.3, 0.5, 0.2)  # noticed 0, 1 or 2 days after onset


@dataclass(frozen=True)
class Episode:
    """One lameness or disease episode of one animal, over whole days [start, end)."""

    kind: str  # "lameness", "respiratory" or "enteric"
    start_day: int
    end_day: int
    severity: int  # lameness 1..3; diseases 1
    code: str  # diagnosis code
    detect_day: int  # the day a person notices it and records it

    def active(self, day: int) -> bool:
        """Return whether the episode affects the animal on `day`."""
        return self.start_day <= day < self.end_day


@dataclass(frozen=True)
class HealthRecord:
    """One event a person records about an episode, at an hour of the detection day."""

    kind: str
    hour: float
    value: float | None
    scale: str | None
    code: str | None
    note: str
    author: str


def draw_lameness(day: int, config: SimulationConfig, rng: np.random.Generator) -> Episode:
    """Return a lameness episode starting on `day`."""
    severity = 1 + int(rng.choice(3, p=SEVERITY_SHARES))
    length = _length_days(config.lameness_days_median, rng)
    code = _pick(LAMENESS_CAUSES, rng)
    return Episode("lameness", day, day + length, severity, code, day + _delay(rng))


def draw_disease(day: int, config: SimulationConfig, rng: np.random.Generator) -> Episode:
    """Return a respiratory or enteric episode starting on `day`."""
    respiratory = rng.random() < RESPIRATORY_SHARE
    kind = "respiratory" if respiratory else "enteric"
    code = _pick(RESPIRATORY_CAUSES if respiratory else ENTERIC_CAUSES, rng)
    length = _length_days(config.disease_days_median, rng)
    return Episode(kind, day, day + length, 1, code, day + _delay(rng))


def detection_records(
    episode: Episode, config: SimulationConfig, rng: np.random.Generator
) -> list[HealthRecord]:
    """Return what is recorded on the day an episode is noticed: score, diagnosis, treatment."""
    hour = 8.0 + 2.0 * rng.random()
    records: list[HealthRecord] = []
    if episode.kind == "lameness":
        score = max(1, recorded_score(episode.severity, config.score_agreement, rng))
        records.append(
            HealthRecord("lameness", hour, float(score), LAMENESS_SCALE, None, "", "stockperson")
        )
    note = f"{episode.kind} episode"
    records.append(HealthRecord("diagnosis", hour + 1.0, None, None, episode.code, note, "vet"))
    treatment = TREATMENT_OF[episode.code]
    records.append(HealthRecord("treatment", hour + 1.2, None, None, treatment, "", "vet"))
    return records


def recorded_score(true_score: int, agreement: float, rng: np.random.Generator) -> int:
    """Return a scorer's reading of a 0-3 lameness score: right with `agreement`, else off by 1."""
    if rng.random() < agreement:
        return true_score
    step = 1 if rng.random() < 0.5 else -1
    if not 0 <= true_score + step <= 3:
        step = -step
    return true_score + step


def _length_days(median_days: float, rng: np.random.Generator) -> int:
    """Return an episode length in whole days (lognormal, at least 2)."""
    return max(2, round(median_days * float(np.exp(rng.normal(0.0, 0.4)))))


def _delay(rng: np.random.Generator) -> int:
    return int(rng.choice(len(DETECTION_DELAY_SHARES), p=DETECTION_DELAY_SHARES))


def _pick(causes: tuple[tuple[str, float], ...], rng: np.random.Generator) -> str:
    codes = [code for code, _ in causes]
    shares = np.array([share for _, share in causes])
    return codes[int(rng.choice(len(codes), p=shares / shares.sum()))]
