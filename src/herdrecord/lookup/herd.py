"""The herd at a glance: every pen's animals with their latest day, link confidence and what
needs a look (anomaly flags, open review items, recent events: a lameness score only from
the farm's attention threshold for its scale up)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.config import Settings
from herdrecord.events.store import current_events
from herdrecord.lookup.animals import AnimalSummary, find_animals
from herdrecord.lookup.review_queue import review_queue
from herdrecord.store.migrations import applied
from herdrecord.store.record import Record

RECENT_DAYS = 7  # flags and events this close to the latest day count as recent
PROBABILITY_SCHEMA = 4  # from this schema on, a day's link_confidence is a probability
REVIEW_SCAN = 10_000  # review items read to count each animal's open ones


@dataclass(frozen=True)
class EventChip:
    """A recent event worth a look: its kind and what the chip says ('lameness 2 of 0-3')."""

    kind: str
    label: str


@dataclass(frozen=True)
class HerdAnimal:
    """One animal's line on the herd page."""

    animal: AnimalSummary
    days_since_seen: int | None  # days between its last day seen and today (UTC)
    # On its last recent day: the probability its links are right (calibrated, not a cosine).
    link_confidence: float | None
    anomalies: tuple[str, ...]  # flags raised within the recent days, most frequent first
    review_items: int  # open review items linked to it
    recent_events: tuple[EventChip, ...]  # one per kind within the recent days, newest first


@dataclass(frozen=True)
class Pen:
    """A pen and its animals, by id."""

    pen_id: str
    animals: list[HerdAnimal]

    @property
    def flagged(self) -> int:
        """Return how many of its animals carry a recent anomaly flag."""
        return sum(1 for a in self.animals if a.anomalies)


@dataclass(frozen=True)
class Herd:
    """The herd as of the record's latest day."""

    as_of: date | None  # the latest day any animal was seen
    pens: list[Pen]

    @property
    def animals(self) -> int:
        """Return how many animals the pens hold."""
        return sum(len(p.animals) for p in self.pens)


def herd_overview(
    record: Record,
    search: str | None = None,
    pen_id: str | None = None,
    include_departed: bool = False,
    recent_days: int = RECENT_DAYS,
    today: date | None = None,
) -> Herd:
    """Return the animals (active ones unless `include_departed`) matching `search` in
    `pen_id`, grouped by pen, with what needs a look in the last `recent_days` days of the
    record (to its latest day); `today` (UTC, by default) dates "last seen"."""
    today = today or datetime.now(UTC).date()
    status = None if include_departed else "active"
    animals = [a for a in find_animals(record, pen_id, status, search) if a.status != "merged"]
    days = record.dataset("days")
    latest = pc.max(days.to_table(columns=["day"]).column("day")).as_py()
    flags: dict[str, Counter[str]] = defaultdict(Counter)
    confidence: dict[str, float | None] = {}
    events: dict[str, dict[str, EventChip]] = defaultdict(dict)
    if latest is not None:
        since = latest - timedelta(days=recent_days - 1)
        recent = days.to_table(
            columns=["animal_id", "day", "link_confidence", "anomalies", "derived_at"],
            filter=f"day >= date '{since.isoformat()}'",
        ).sort_by([("animal_id", "ascending"), ("day", "ascending")])
        ids = recent.column("animal_id").to_pylist()
        # Sorted by animal and day: an animal's last row holds its latest confidence.
        confidence = dict(zip(ids, _probabilities(record, recent), strict=True))
        anomalies = recent.column("anomalies").combine_chunks()
        owners = pc.take(recent.column("animal_id"), pc.list_parent_indices(anomalies))
        for owner, flag in zip(
            owners.to_pylist(), pc.list_flatten(anomalies).to_pylist(), strict=True
        ):
            flags[owner][flag] += 1
        in_force = current_events(record, start=datetime.combine(since, time(), UTC))
        columns = ["animal_id", "kind", "value", "scale"]
        newest_first = in_force.select(columns).to_pylist()[::-1]
        now_known_as = _merged_into(record)
        for row in newest_first:  # current_events sorts by `at`
            animal_id = now_known_as.get(row["animal_id"], row["animal_id"])
            chip = event_chip(row, record.settings)
            if chip is not None and chip.kind not in events[animal_id]:
                events[animal_id][chip.kind] = chip
    review = Counter(item.animal_id for item in review_queue(record, REVIEW_SCAN))
    by_pen: dict[str, list[HerdAnimal]] = defaultdict(list)
    for animal in animals:
        last = animal.last_day
        by_pen[animal.pen_id or "no pen"].append(
            HerdAnimal(
                animal=animal,
                days_since_seen=None if last is None else (today - last).days,
                link_confidence=confidence.get(animal.animal_id),
                anomalies=tuple(f for f, _ in flags[animal.animal_id].most_common()),
                review_items=review[animal.animal_id],
                recent_events=tuple(events[animal.animal_id].values()),
            )
        )
    pens = [Pen(pen, by_pen[pen]) for pen in sorted(by_pen)]
    return Herd(latest, pens)


def _probabilities(record: Record, days: pa.Table) -> list[float | None]:
    """Return the days' link confidence where it is a probability: a day derived before the
    record's migration to schema 4 holds a mean cosine there instead, not shown until the day
    is derived again."""
    migrated = [m.applied_at for m in applied(record.db) if m.version == PROBABILITY_SCHEMA]
    since = migrated[0] if migrated else None
    values: list[float | None] = days.column("link_confidence").to_pylist()
    if since is None:
        return values
    derived = days.column("derived_at").to_pylist()
    return [v if at >= since else None for v, at in zip(values, derived, strict=True)]


def event_chip(event: dict[str, object], settings: Settings) -> EventChip | None:
    """Return the chip an event (kind, value, scale) earns on the herd page; None for a
    lameness score below the attention threshold of its scale (weekly herd scoring records a
    0 for every sound animal: those are not news)."""
    kind = str(event["kind"])
    if kind != "lameness":
        return EventChip(kind, kind)
    score, scale = event["value"], event["scale"]
    threshold = attention_threshold(None if scale is None else str(scale), settings)
    if not isinstance(score, int | float) or score < threshold:
        return None
    return EventChip(kind, f"lameness {score:g}" + (f" of {scale}" if scale else ""))


def attention_threshold(scale: str | None, settings: Settings) -> float:
    """Return the lowest lameness score that needs a look on `scale` ("0-3" or "1-5"); a
    score without a scale is read on 0-3, the scale of pigs."""
    if scale == "1-5":
        return settings.lameness_attention_1_5
    return settings.lameness_attention_0_3


def _merged_into(record: Record) -> dict[str, str]:
    """Return the id each merged animal is known by now (following merges of merges)."""
    rows = record.dataset("animals").to_table(
        columns=["animal_id", "merged_into"], filter="merged_into IS NOT NULL"
    )
    into = dict(
        zip(
            rows.column("animal_id").to_pylist(),
            rows.column("merged_into").to_pylist(),
            strict=True,
        )
    )
    resolved = {}
    for animal_id in into:
        target, seen = into[animal_id], {animal_id}
        while target in into and target not in seen:
            seen.add(target)
            target = into[target]
        resolved[animal_id] = target
    return resolved
