"""An animal's audit trail as a person reads it: runs of one decision repeated folded into one.

Every re-link of a pen-day writes each tracklet's decision again, mostly unchanged (the same
animal, by the same method and author), so a few weeks' history holds each decision many
times over; folded, what is left is what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from herdrecord.linking.review import HistoryEntry, TrackletRef, history
from herdrecord.store.record import Record


@dataclass(frozen=True)
class Decision:
    """A run of identical decisions about one tracklet, one after another (often just one)."""

    first_decided_at: datetime
    decided_at: datetime  # the run's latest
    tracklet: TrackletRef
    animal_id: str | None
    method: str
    decided_by: str
    score: float | None  # the latest decision's; a re-link may move it a little
    current: bool  # the run ends with the decision in force
    times: int  # decisions in the run


def folded_history(record: Record, animal_id: str, since: datetime | None = None) -> list[Decision]:
    """Return the animal's link decisions oldest first, each run of identical ones (same
    tracklet, animal, method and author, one after another) as one; with `since`, only the
    runs whose latest decision is at or after it."""
    entries = history(record, animal_id)
    by_tracklet: dict[TrackletRef, list[HistoryEntry]] = {}
    for entry in entries:  # oldest first, so each tracklet's list is in time order
        by_tracklet.setdefault(entry.tracklet, []).append(entry)
    decisions = []
    for tracklet, own in by_tracklet.items():
        for _, run in groupby(own, key=lambda e: (e.animal_id, e.method, e.decided_by)):
            runs = list(run)
            last = runs[-1]
            decisions.append(
                Decision(
                    first_decided_at=runs[0].decided_at,
                    decided_at=last.decided_at,
                    tracklet=tracklet,
                    animal_id=last.animal_id,
                    method=last.method,
                    decided_by=last.decided_by,
                    score=last.score,
                    current=last.current,
                    times=len(runs),
                )
            )
    decisions.sort(key=lambda d: (d.decided_at, str(d.tracklet)))
    if since is not None:
        decisions = [d for d in decisions if d.decided_at >= since]
    return decisions
