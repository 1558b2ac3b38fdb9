"""The state a linking run carries across pen-days: its knobs, animals, pool and answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from herdrecord.linking.assignment import Clusters, PenDayTracklets
from herdrecord.linking.confidence import ScoreSpread
from herdrecord.linking.pool import DEFAULT_EXEMPLARS_PER_ANIMAL, Pool
from herdrecord.reid import FaissIndex


@dataclass(frozen=True)
class LinkingConfig:
    """Knobs of linking; the open-set threshold itself is calibrated from the record's data."""

    exemplars_per_animal: int = DEFAULT_EXEMPLARS_PER_ANIMAL
    # A newcomer needs this share of a typical animal's tracked time in its pen that day.
    min_enrol_share: float = 0.1
    roster_absent_days: int = 3  # an animal unseen this long leaves its pen's roster
    default_threshold: float = 0.15  # used only until the record has pairs to calibrate on
    confident_margin: float = 0.02  # lead over the runner-up that lets a link feed the pool


@dataclass
class AnimalState:
    """What linking tracks of one animal while it runs."""

    pen_id: str | None
    last_seen_day: date | None
    tag_id: str | None
    status: str
    departed_on: date | None = None  # the UTC day of its death or sale in force, if any
    enrolled_on: date | None = None  # the day this run enrolled it, if it did

    def present(self, day: date) -> bool:
        """Return whether the animal could be seen on `day`: active, or departed on or after
        it (a departure recorded late does not unmake the days before it)."""
        if self.status == "active":
            return True
        return (
            self.status == "departed" and self.departed_on is not None and day <= self.departed_on
        )


# tag -> animal -> the days a read of the tag sat on a tracklet linked to that animal
TagDays = dict[str, dict[str, set[date]]]
TAG_AGREEING_DAYS = 2


def tag_owner(days_by_animal: dict[str, set[date]]) -> str | None:
    """Return the animal an unbound tag belongs to, once its reads say so, else None.

    A read names the animal at the feeder, but it reaches an animal only through the link of
    its tracklet, and one link can be wrong (a stray chain in a near-twin's day). Bound on
    its first read, a tag would then anchor the other animal's reads to that identity from
    then on, and the two would trade identities day by day. So a tag is bound once its reads
    on `TAG_AGREEING_DAYS` days were linked to one animal, more days than to any other.
    """
    ranked = sorted(days_by_animal.items(), key=lambda item: (-len(item[1]), item[0]))
    if not ranked or len(ranked[0][1]) < TAG_AGREEING_DAYS:
        return None
    if len(ranked) > 1 and len(ranked[1][1]) == len(ranked[0][1]):
        return None
    return ranked[0][0]


@dataclass
class RunState:
    """Everything one linking run shares across its pen-days."""

    pool: Pool
    index: FaissIndex  # the pool's exemplars as the run found them (for wide searches)
    owners: dict[int, str]  # exemplar id -> animal, for the index's exemplars
    animals: dict[str, AnimalState]
    must: dict[tuple[str, str], str]
    must_by: dict[tuple[str, str], str]  # who gave each must-link answer
    cannot: dict[tuple[str, str], set[str]]
    threshold: float
    config: LinkingConfig
    next_number: int
    enrolled: list[str] = field(default_factory=list)
    tag_days: TagDays = field(default_factory=dict)  # unbound tags' reads: `bind_tags`
    seen_today: dict[str, str] = field(default_factory=dict)  # animal -> pen, for the day
    spread: ScoreSpread = field(default_factory=ScoreSpread)  # the run's scores, for confidence
    # Per pen-day solved: its final scores (k, a), choice (k,) and each decision's cluster,
    # so every link's confidence is computed at the end of the run from all its scores.
    scored: list[tuple[np.ndarray, np.ndarray, list[int]]] = field(default_factory=list)

    def new_animal_id(self) -> str:
        """Return the id of the next provisional animal."""
        animal_id = f"P{self.next_number:05d}"
        self.next_number += 1
        return animal_id


@dataclass(frozen=True)
class PenDayInput:
    """One pen-day's tracklets (descriptors centred per camera) and their continuation chains."""

    pen_id: str
    day: date
    keys: list[tuple[str, str]]  # (device_id, track_id) per tracklet
    tag_id: list[str | None]
    label: np.ndarray  # cluster of each tracklet
    clusters: Clusters
    tracklets: PenDayTracklets
    cliques: list[list[int]]  # maximal sets of clusters seen at one moment, in time order
