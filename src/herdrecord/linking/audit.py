"""An animal's audit trail: every link decision about its tracklets (`history`), and as a
person reads it, runs of one decision repeated folded into one (`folded_history`).

Every re-link of a pen-day writes each tracklet's decision again, mostly unchanged (the same
animal, by the same method and author), so a few weeks' history holds each decision many
times over; folded, what is left is what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from herdrecord.errors import InvalidInput, UnknownAnimal
from herdrecord.store.record import Record
from herdrecord.store.sql import sql_literal


@dataclass(frozen=True)
class TrackletRef:
    """A tracklet, written `DEVICE:TRACK` on the command line."""

    device_id: str
    track_id: str

    @classmethod
    def parse(cls, text: str) -> TrackletRef:
        """Return the reference written as `DEVICE:TRACK`."""
        device_id, sep, track_id = text.partition(":")
        if not sep or not device_id or not track_id:
            raise InvalidInput(
                f"{text!r}: write a tracklet as DEVICE:TRACK, e.g. dev-01:cam1-000123"
            )
        return cls(device_id, track_id)

    def __str__(self) -> str:
        return f"{self.device_id}:{self.track_id}"


@dataclass(frozen=True)
class HistoryEntry:
    """One decision in an animal's audit trail."""

    decided_at: datetime
    tracklet: TrackletRef
    animal_id: str | None
    method: str
    decided_by: str
    score: float | None
    current: bool


def history(record: Record, animal_id: str) -> list[HistoryEntry]:
    """Return every link decision about the animal's tracklets, oldest first."""
    require_animal(record, animal_id)
    table = record.dataset("links")
    mine = table.to_table(
        columns=["device_id", "track_id"], filter=f"animal_id = {sql_literal(animal_id)}"
    )
    tracks = sorted(set(mine.column("track_id").to_pylist()))
    if not tracks:
        return []
    # Read only the decisions about those track ids, then keep the exact (device, track) pairs.
    links = table.to_table(
        columns=[
            "decided_at",
            "device_id",
            "track_id",
            "animal_id",
            "method",
            "decided_by",
            "score",
        ],
        filter=f"track_id IN ({', '.join(sql_literal(t) for t in tracks)})",
    )
    pairs = set(
        zip(mine.column("device_id").to_pylist(), mine.column("track_id").to_pylist(), strict=True)
    )
    rows = [row for row in links.to_pylist() if (row["device_id"], row["track_id"]) in pairs]
    newest: dict[tuple[str, str], datetime] = {}
    for row in rows:
        key = (row["device_id"], row["track_id"])
        newest[key] = max(newest.get(key, row["decided_at"]), row["decided_at"])
    rows.sort(key=lambda r: (r["decided_at"], r["device_id"], r["track_id"]))
    entries, seen_current = [], set()
    for row in reversed(rows):  # newest first, so ties in time mark one row current
        key = (row["device_id"], row["track_id"])
        current = key not in seen_current and row["decided_at"] == newest[key]
        if current:
            seen_current.add(key)
        entries.append(
            HistoryEntry(
                row["decided_at"],
                TrackletRef(*key),
                row["animal_id"],
                row["method"],
                row["decided_by"],
                row["score"],
                current,
            )
        )
    return entries[::-1]


def require_animal(record: Record, animal_id: str) -> dict[str, object]:
    rows = record.dataset("animals").to_table(filter=f"animal_id = {sql_literal(animal_id)}")
    if rows.num_rows == 0:
        raise UnknownAnimal(animal_id)
    row: dict[str, object] = rows.to_pylist()[0]
    if row["status"] == "merged":
        raise InvalidInput(f"{animal_id} was merged into {row['merged_into']}; use that id")
    return row


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
