"""Review: the queue of uncertain links, and people's answers, which become constraints.

Every answer records who and when, is stored as a permanent must-link / cannot-link
constraint that linking never overrides, and re-derives the links that depend on it (the
pen-days involved are solved again). `history` is an animal's audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.days.derive import owe_days, settle_days_locked
from herdrecord.errors import InvalidInput, UnknownTracklet
from herdrecord.linking.audit import TrackletRef as TrackletRef  # answers take it
from herdrecord.linking.audit import require_animal as _require_animal
from herdrecord.linking.pool import DEFAULT_EXEMPLARS_PER_ANIMAL, Pool
from herdrecord.linking.poolindex import open_pool_index, write_pool
from herdrecord.linking.run import read_answers, relink_locked
from herdrecord.store.linktable import connect_links, current_links, pen_days_of
from herdrecord.store.record import Record
from herdrecord.store.sql import sql_literal


@dataclass(frozen=True)
class ReviewOutcome:
    """What an answer changed."""

    action: str
    animals: tuple[str, ...]
    relinked_pen_days: int
    changed_links: int


@dataclass(frozen=True)
class Candidate:
    """An animal a tracklet may show, with how alike they look."""

    animal_id: str
    score: float | None  # similarity as linking scores it (mean of its best exemplars)
    current: bool  # the animal the tracklet is linked to now


def candidates(record: Record, tracklet: TrackletRef, k: int = 4) -> list[Candidate]:
    """Return the tracklet's current animal and the `k` active animals of its pen that look
    most like it (scored as linking scores them), most alike first: what a reviewer compares
    it with."""
    rows = record.dataset("tracklets").to_table(
        columns=["pen_id", "descriptor"], filter=_tracklet_filter(tracklet)
    )
    if rows.num_rows == 0:
        raise UnknownTracklet(tracklet.device_id, tracklet.track_id)
    current = _current_animal(record, tracklet)
    pen_id = rows.column("pen_id")[0].as_py()
    roster = (
        record.dataset("animals")
        .to_table(
            columns=["animal_id"], filter=f"status = 'active' AND pen_id = {sql_literal(pen_id)}"
        )
        .column("animal_id")
        .to_pylist()
    )
    if current is not None and current not in roster:
        roster.append(current)
    descriptor = rows.column("descriptor")[0].as_py()
    scores: dict[str, float] = {}
    if descriptor is not None and roster:
        listed = ", ".join(sql_literal(a) for a in roster)
        exemplars = record.dataset("pool").to_table(filter=f"animal_id IN ({listed})")
        pool = Pool.from_arrow(exemplars, record.embedder.dim, DEFAULT_EXEMPLARS_PER_ANIMAL)
        query = np.asarray(descriptor, dtype=np.float32)[None, :]
        for animal_id, score in zip(roster, pool.scores(query, roster)[0].tolist(), strict=True):
            if animal_id in pool.animals:
                scores[animal_id] = score
    ranked = sorted(scores, key=lambda a: -scores[a])
    chosen = [a for a in ranked if a != current][:k]
    if current is not None:
        chosen.insert(0, current)
    return [Candidate(a, scores.get(a), a == current) for a in chosen]


def confirm(record: Record, tracklet: TrackletRef, by: str) -> ReviewOutcome:
    """Confirm a tracklet's current animal: it becomes a must-link."""
    with record.writer():
        animal_id = _current_animal(record, tracklet)
        if animal_id is None:
            raise InvalidInput(f"{tracklet} is not linked to an animal; use reassign or new")
        _constrain(record, [(tracklet, animal_id, "must_link")], by)
        return _rederive(record, "confirm", (animal_id,), [tracklet])


def reassign(record: Record, tracklet: TrackletRef, animal_id: str, by: str) -> ReviewOutcome:
    """Link a tracklet to another animal, never again to its current one."""
    with record.writer():
        _require_animal(record, animal_id)
        current = _current_animal(record, tracklet)
        clash = _answered_at_the_same_time(record, tracklet, animal_id)
        if clash is not None:
            raise InvalidInput(
                f"{tracklet} cannot be {animal_id}: {clash}, seen at the same time, is "
                f"{animal_id}'s by a person's answer (reassign {clash} first if that was wrong)"
            )
        answers = [(tracklet, animal_id, "must_link")]
        if current is not None and current != animal_id:
            answers.append((tracklet, current, "cannot_link"))
        _constrain(record, answers, by)
        return _rederive(record, "reassign", (animal_id,), [tracklet])


def enrol_new(
    record: Record, tracklets: list[TrackletRef], by: str, name: str | None = None
) -> ReviewOutcome:
    """Enrol a new animal for the given tracklets (a person's enrolment is not provisional)."""
    with record.writer():
        current = {t: _current_animal(record, t) for t in tracklets}
        animal_id = _new_animal(record, name, pen_id=_pen_of(record, tracklets[0]))
        answers = [(t, animal_id, "must_link") for t in tracklets]
        answers += [(t, old, "cannot_link") for t, old in current.items() if old]
        _constrain(record, answers, by)
        return _rederive(record, "new", (animal_id,), tracklets)


def split(
    record: Record, animal_id: str, tracklets: list[TrackletRef], by: str, name: str | None = None
) -> ReviewOutcome:
    """Move tracklets of an animal to a new animal."""
    with record.writer():
        _require_animal(record, animal_id)
        for t in tracklets:
            if _current_animal(record, t) != animal_id:
                raise InvalidInput(f"{t} is not linked to {animal_id}; nothing to split off")
        new_id = _new_animal(record, name, pen_id=_pen_of(record, tracklets[0]))
        answers = [(t, new_id, "must_link") for t in tracklets]
        answers += [(t, animal_id, "cannot_link") for t in tracklets]
        _constrain(record, answers, by)
        return _rederive(record, "split", (animal_id, new_id), tracklets)


def same_animal(record: Record, tracklet: TrackletRef, other: str, by: str) -> ReviewOutcome:
    """Answer a review item with "the tracklet's animal and `other` are one animal": merge
    the newer of the two (a provisional one before a named one, else the later enrolled)
    into the other, and confirm the tracklet's link to the one kept."""
    current = _current_animal(record, tracklet)
    if current is None:
        raise InvalidInput(
            f"{tracklet.device_id}:{tracklet.track_id} is linked to no animal: link it to "
            f"{other} (reassign) instead"
        )
    if current == other:
        raise InvalidInput(f"{tracklet.device_id}:{tracklet.track_id} is already {other}'s")
    first, second = (_require_animal(record, a) for a in (current, other))
    ordered = sorted([first, second], key=lambda r: (bool(r["provisional"]), r["created_at"]))
    keep, gone = str(ordered[0]["animal_id"]), str(ordered[1]["animal_id"])
    merged = merge(record, keep, gone, by)
    confirmed = confirm(record, tracklet, by)
    return ReviewOutcome(
        "merge",
        merged.animals,
        merged.relinked_pen_days + confirmed.relinked_pen_days,
        merged.changed_links + confirmed.changed_links,
    )


def merge(record: Record, keep: str, gone: str, by: str) -> ReviewOutcome:
    """Merge animal `gone` into `keep`: one animal seen under two ids."""
    if keep == gone:
        raise InvalidInput("cannot merge an animal with itself")
    with record.writer():
        _require_animal(record, keep)
        _require_animal(record, gone)
        clash = _overlap_between(record, keep, gone)
        if clash:
            raise InvalidInput(
                f"{keep} and {gone} were seen at the same time ({clash}); they are two animals"
            )
        links = current_links(record).filter(pc.field("animal_id") == gone)
        moved = [
            TrackletRef(d, t)
            for d, t in zip(
                links.column("device_id").to_pylist(),
                links.column("track_id").to_pylist(),
                strict=True,
            )
        ]
        keys = pa.table(
            {"device_id": [t.device_id for t in moved], "track_id": [t.track_id for t in moved]}
        )
        # Owed before the links move: a merge killed before its days leaves the note, and the
        # next link run (or a merge run again) derives them.
        owed = owe_days(record, {day for _, day in pen_days_of(record, keys)})
        now = datetime.now(UTC)
        _append_links(record, [(t, keep, "review") for t in moved], by, now)
        _rewrite_constraints(record, gone, keep)
        rows = record.dataset("pool").to_table()
        pool = Pool.from_arrow(rows, record.embedder.dim, DEFAULT_EXEMPLARS_PER_ANIMAL)
        index = open_pool_index(record, pool)
        pool.move(gone, keep)
        write_pool(record, pool, index)
        _update_animal(record, gone, status="merged", merged_into=keep)
        settle_days_locked(record, owed)
        return ReviewOutcome("merge", (keep, gone), 0, len(moved))


def rename(record: Record, animal_id: str, name: str) -> ReviewOutcome:
    """Give an animal a display name; a named animal is no longer provisional."""
    with record.writer():
        _require_animal(record, animal_id)
        _update_animal(record, animal_id, display_name=name, provisional=False)
        return ReviewOutcome("rename", (animal_id,), 0, 0)


def depart(record: Record, animal_id: str, by: str) -> ReviewOutcome:
    """Mark an animal as departed (sold, dead, moved off the farm): no longer a candidate."""
    with record.writer():
        _require_animal(record, animal_id)
        _update_animal(record, animal_id, status="departed")
        del by  # who recorded a departure is kept with the event (issue 4), not here
        return ReviewOutcome("depart", (animal_id,), 0, 0)


def linked_animal(record: Record, tracklet: TrackletRef) -> str | None:
    """Return the animal the tracklet is linked to now (None: unknown animal)."""
    return _current_animal(record, tracklet)


def _current_animal(record: Record, tracklet: TrackletRef) -> str | None:
    links = current_links(record)
    con = duckdb.connect()
    con.register("current", links)
    row = con.sql(
        "SELECT animal_id FROM current WHERE device_id = $d AND track_id = $t",
        params={"d": tracklet.device_id, "t": tracklet.track_id},
    ).fetchall()
    if not row:
        _pen_of(record, tracklet)  # raises UnknownTracklet when it does not exist
        return None
    return None if row[0][0] is None else str(row[0][0])


def _pen_of(record: Record, tracklet: TrackletRef) -> str:
    rows = record.dataset("tracklets").to_table(
        columns=["pen_id"],
        filter=_tracklet_filter(tracklet),
    )
    if rows.num_rows == 0:
        raise UnknownTracklet(tracklet.device_id, tracklet.track_id)
    return str(rows.column("pen_id")[0].as_py())


def _tracklet_filter(tracklet: TrackletRef) -> str:
    device, track = sql_literal(tracklet.device_id), sql_literal(tracklet.track_id)
    return f"device_id = {device} AND track_id = {track}"


def _new_animal(record: Record, name: str | None, pen_id: str) -> str:
    table = record.table("animals")
    ids = table.to_lance().to_table(columns=["animal_id"]).column("animal_id").to_pylist()
    numbers = [int(a[1:]) for a in ids if a.startswith("A") and a[1:].isdigit()]
    animal_id = f"A{max(numbers, default=0) + 1:05d}"
    row = {
        "animal_id": animal_id,
        "display_name": name,
        "tag_id": None,
        "species": "pig",
        "sex": None,
        "birth_date": None,
        "pen_id": pen_id,
        "status": "active",
        "provisional": False,
        "merged_into": None,
        "created_at": datetime.now(UTC),
    }
    table.add(pa.Table.from_pylist([row], schema=table.schema))
    return animal_id


def _update_animal(record: Record, animal_id: str, **changes: object) -> None:
    table = record.table("animals")
    row = table.to_lance().to_table(filter=f"animal_id = {sql_literal(animal_id)}").to_pylist()[0]
    updated = pa.Table.from_pylist([{**row, **changes}], schema=table.schema)
    table.merge_insert("animal_id").when_matched_update_all().when_not_matched_insert_all().execute(
        updated
    )


def _constrain(record: Record, answers: list[tuple[TrackletRef, str, str]], by: str) -> None:
    now = datetime.now(UTC)
    table = record.table("constraints")
    rows = [
        {
            "device_id": t.device_id,
            "track_id": t.track_id,
            "animal_id": a,
            "kind": kind,
            "decided_by": by,
            "decided_at": now,
        }
        for t, a, kind in answers
    ]
    table.add(pa.Table.from_pylist(rows, schema=table.schema))


def _append_links(
    record: Record, links: list[tuple[TrackletRef, str | None, str]], by: str, now: datetime
) -> None:
    if not links:
        return
    table = record.table("links")
    rows = [
        {
            "device_id": t.device_id,
            "track_id": t.track_id,
            "animal_id": a,
            "score": None,
            "margin": None,
            # A person's answer is the record's ground truth; other moves wait for linking.
            "confidence": 1.0 if method == "review" and a is not None else None,
            "method": method,
            "decided_by": by,
            "decided_at": now,
        }
        for t, a, method in links
    ]
    table.add(pa.Table.from_pylist(rows, schema=table.schema))


def _rewrite_constraints(record: Record, gone: str, keep: str) -> None:
    table = record.table("constraints")
    rows = table.to_lance().to_table(filter=f"animal_id = {sql_literal(gone)}")
    if rows.num_rows == 0:
        return
    moved = rows.set_column(
        rows.schema.get_field_index("animal_id"),
        "animal_id",
        pa.array([keep] * rows.num_rows, pa.string()),
    )
    table.add(moved)


def _overlap_between(record: Record, a: str, b: str) -> str | None:
    con = connect_links(record)
    row = con.sql(
        """
        WITH x AS (SELECT t.* FROM current c JOIN tracklets t USING (device_id, track_id)
                   WHERE c.animal_id = $a),
             y AS (SELECT t.* FROM current c JOIN tracklets t USING (device_id, track_id)
                   WHERE c.animal_id = $b)
        SELECT x.device_id || ':' || x.track_id || ' and ' || y.device_id || ':' || y.track_id
        FROM x JOIN y ON x.start <= y."end" AND y.start <= x."end" LIMIT 1
        """,
        params={"a": a, "b": b},
    ).fetchall()
    return str(row[0][0]) if row else None


def _answered_at_the_same_time(
    record: Record, tracklet: TrackletRef, animal_id: str
) -> TrackletRef | None:
    """Return a tracklet seen at the same time as `tracklet` that a person's answer in force
    gives to `animal_id` (the two answers cannot both hold)."""
    own = (tracklet.device_id, tracklet.track_id)
    keys = {key for key, animal in read_answers(record).must.items() if animal == animal_id} - {own}
    if not keys:
        return None
    listed = ", ".join(sql_literal(t) for t in sorted({own[1], *(t for _, t in keys)}))
    rows = record.read_visible(
        "tracklets", ["device_id", "track_id", "start", "end"], where=f"track_id IN ({listed})"
    ).to_pylist()
    spans = {(r["device_id"], r["track_id"]): (r["start"], r["end"]) for r in rows}
    start, end = spans[own]
    for key in sorted(keys & set(spans)):
        if spans[key][0] <= end and start <= spans[key][1]:
            return TrackletRef(*key)
    return None


def _rederive(
    record: Record, action: str, animals: tuple[str, ...], tracklets: list[TrackletRef]
) -> ReviewOutcome:
    """Solve again the pen-days of the answered tracklets, so everything follows the answer."""
    before = current_links(record)
    con = duckdb.connect()
    keys = pa.table(
        {"device_id": [t.device_id for t in tracklets], "track_id": [t.track_id for t in tracklets]}
    )
    pen_days = pen_days_of(record, keys)
    relink_locked(record, pen_days)
    after = current_links(record)
    con.register("before", before)
    con.register("after", after)
    changed = con.sql(
        "SELECT count(*) FROM after a LEFT JOIN before b USING (device_id, track_id) "
        "WHERE a.animal_id IS DISTINCT FROM b.animal_id"
    ).fetchall()
    return ReviewOutcome(action, animals, len(pen_days), int(changed[0][0]))
