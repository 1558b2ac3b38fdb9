"""Link tracklets to animals: per pen-day, jointly, with the barn's constraints and the pool.

`link_pending` finds every pen-day holding a tracklet without a current link (new batches,
late batches, or a link run cut short) and re-solves those pen-days in time order:
continuation chains, tag anchors and people's answers first, then a clique-by-clique joint
assignment against the pen's roster (`assignment.py`), then a search of the whole pool for
animals that moved in, then enrolment of consistent unknowns as provisional animals, and a
second joint pass that includes them. Confident links feed the pool. Links are append-only;
the current link of a tracklet is its latest row.

Where the camera registry says two cameras' views overlap (`cameras.py`), an animal seen by
both at once is two tracklets; the shorter (its twin, `twins.py`) is taken out before the
solve, so "seen together means different animals" holds again, and gets its host's link.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.days.derive import DaysReport, owe_days, settle_days_locked
from herdrecord.days.retention import RetentionReport, retain_locked
from herdrecord.events.rules import DEPARTURES
from herdrecord.events.store import current_events
from herdrecord.linking.assignment import (
    PenDayTracklets,
    calibrate_threshold,
    centre_by_camera,
    concurrent_cliques,
    make_clusters,
)
from herdrecord.linking.cameras import overlaps_by_pen
from herdrecord.linking.intervals import overlapping_pairs
from herdrecord.linking.learned_metric import (
    MAX_PAIRS_PER_PEN_DAY,
    Metric,
    MetricFit,
    constraint_pairs,
    learn_metric,
    save_metric,
    stored_metric,
)
from herdrecord.linking.penday import solve_day
from herdrecord.linking.pool import Pool
from herdrecord.linking.poolindex import open_pool_index, write_pool
from herdrecord.linking.state import (
    AnimalState,
    LinkingConfig,
    PenDayInput,
    RunState,
    TagDays,
    tag_owner,
)
from herdrecord.linking.stitching import StitchModel
from herdrecord.linking.stitchmodel import (
    describe,
    first_pass,
    fit_stitch_model,
    save_stitch_model,
    stitch_pen_day,
)
from herdrecord.linking.tracklets import TrackletData, load_tracklets
from herdrecord.linking.twins import (
    PenMaps,
    TwinCandidates,
    decide_twins,
    describe_maps,
    learn_camera_maps,
    save_camera_maps,
    stored_camera_maps,
    twin_candidates,
)
from herdrecord.reid.vectors import normalise
from herdrecord.store.linktable import META_RELINK_OWED, current_links, pen_days_of, relinks_owed
from herdrecord.store.record import Record, link_run_done, note_link_run


@dataclass(frozen=True)
class LinkReport:
    """What one linking run decided."""

    pen_days: int
    tracklets: int
    linked: int
    unknown: int
    enrolled: tuple[str, ...]
    threshold: float
    seconds: float  # the whole run: reading, solving, writing links, pool and index
    solve_seconds: float  # deciding alone: from descriptors in memory to decisions
    days: DaysReport  # the animal-days re-derived from the new links
    retention: RetentionReport | None = None  # the tiers applied as days closed
    model: str = ""  # what the join model learned from this run's pen-days (one line)
    metric: str = ""  # the learned metric in use (one line), "" while there is none
    cameras: str = ""  # the camera maps of overlapping views in use (one line), or ""


def link_pending(record: Record, config: LinkingConfig | None = None) -> LinkReport:
    """Re-solve every pen-day that has a tracklet without a current link; then, when a new
    day closed, apply the retention tiers (unless the settings turn that off)."""
    with record.writer():
        owed = relinks_owed(record)
        report = relink_locked(record, _pending_pen_days(record) | owed, config)
        if owed:  # re-solved, links written: the late events' days are settled
            record.set_metadata(META_RELINK_OWED, [])
        if record.settings.retention_enabled:
            report = replace(report, retention=retain_locked(record))
        return report


def relink_all(record: Record, config: LinkingConfig | None = None) -> LinkReport:
    """Re-solve every pen-day of the record (after a change of method or embedder)."""
    with record.writer():
        report = relink_locked(record, None, config)
        record.set_metadata(META_RELINK_OWED, [])
        return report


def relink_locked(
    record: Record, pen_days: set[tuple[str, date]] | None, config: LinkingConfig | None = None
) -> LinkReport:
    """Re-solve the given pen-days (all when None); the caller holds the writer lock.

    The days are noted as owed before any link is written and re-derived after, so the days
    of a run killed in between are re-derived by the next run.
    """
    started = time.perf_counter()
    data = load_tracklets(record, pen_days)
    if pen_days is None:
        touched = {date.fromisoformat(str(d)) for d in np.unique(data.day)}
    else:
        touched = {day for _, day in pen_days}
    owed = owe_days(record, touched)
    report = _link(record, data, config or LinkingConfig(), started)
    return replace(report, days=settle_days_locked(record, owed))


def _pending_pen_days(record: Record) -> set[tuple[str, date]]:
    links = record.dataset("links").to_table(columns=["device_id", "track_id"])
    return pen_days_of(record, links, listed=False)


def _link(record: Record, data: TrackletData, config: LinkingConfig, started: float) -> LinkReport:
    dim = record.embedder.dim
    pool_rows = record.dataset("pool").to_table()
    solving = set(zip(data.device_id, data.track_id, strict=True))
    answers = read_answers(record)
    whole = data
    # Twins out before the metric learns (seen together is then different again), found in
    # the stored metric's space; then found again in the refit metric's space, and the metric
    # refit once more without them (the first fit still learned from the twins missed).
    earlier = stored_metric(record) if overlaps_by_pen(record) else None
    maps = stored_camera_maps(record)
    if earlier is not None and earlier.transform.shape[0] != dim:
        earlier = None  # learned for another embedder's vectors
    data, twins = _take_twins(
        record, whole, answers, None if earlier is None else earlier.apply, maps
    )
    prepared = _centred(data)
    metric_fit = _learn_metric(record, data, prepared, answers.must)
    if twins and metric_fit.metric is not None:
        data, twins = _take_twins(record, whole, answers, metric_fit.metric.apply, maps)
        prepared = _centred(data)
        metric_fit = _learn_metric(record, data, prepared, answers.must)
        if metric_fit.metric is not None:
            data, twins = _take_twins(record, whole, answers, metric_fit.metric.apply, maps)
            prepared = _centred(data)
    look = None if metric_fit.metric is None else metric_fit.metric.apply
    pool = Pool.from_arrow(pool_rows, dim, config.exemplars_per_animal, look)
    looks = [(key, _in_metric(t, metric_fit.metric), rows) for key, t, rows in prepared]
    model = fit_stitch_model(record, [(key[0], t) for key, t, _ in looks])
    pen_days = [
        _prepare(data, key, rows, tracklets, looked, model, answers.must, metric_fit.metric)
        for (key, tracklets, rows), (_, looked, _) in zip(prepared, looks, strict=True)
    ]
    animals, tag_days = _animal_states(record, solving)
    run = RunState(
        pool=pool,
        index=open_pool_index(record, pool),
        owners=pool.owners(),
        animals=animals,
        tag_days=tag_days,
        must=answers.must,
        must_by=answers.must_by,
        cannot=answers.cannot,
        threshold=_calibrate(pen_days, config, look),
        config=config,
        next_number=_next_provisional_number(record),
    )
    decisions: list[dict[str, object]] = []
    solve_started = time.perf_counter()
    for day in sorted({pen.day for pen in pen_days}):
        decisions.extend(solve_day([pen for pen in pen_days if pen.day == day], run))
    solve_seconds = time.perf_counter() - solve_started
    decisions = _with_twins(_with_confidence(decisions, run), twins)
    _write(record, decisions, run)
    if pen_days:
        save_stitch_model(record, model)
    if maps:
        save_camera_maps(record, maps)
    if metric_fit.metric is not None and metric_fit.stats is not None:
        save_metric(record, metric_fit.metric, metric_fit.stats)
    linked = sum(1 for d in decisions if d["animal_id"] is not None)
    return LinkReport(
        pen_days=len(pen_days),
        tracklets=len(decisions),
        linked=linked,
        unknown=len(decisions) - linked,
        enrolled=tuple(run.enrolled),
        threshold=run.threshold,
        seconds=time.perf_counter() - started,
        solve_seconds=solve_seconds,
        days=DaysReport(0, 0, 0.0),
        model=describe(model) if pen_days else "",
        metric=metric_fit.metric.describe() if metric_fit.metric else "",
        cameras=describe_maps(maps, len(twins)),
    )


def _centred(data: TrackletData) -> list[tuple[tuple[str, date], PenDayTracklets, np.ndarray]]:
    """Return each pen-day's key, its tracklets with camera-centred looks, and their rows."""
    return [(key, centre_by_camera(data.pen_day(rows)), rows) for key, rows in data.pen_days()]


def _take_twins(
    record: Record,
    data: TrackletData,
    answers: Answers,
    look: Callable[[np.ndarray], np.ndarray] | None,
    maps: PenMaps,
) -> tuple[TrackletData, list[tuple[tuple[str, str], tuple[str, str]]]]:
    """Return the tracklets less the twins (an animal seen at once by a second camera whose
    view overlaps, `twins.py`), and each twin's key with its host's. `maps` (by pen) are
    the camera maps to start from, and are updated to those learned here.

    A tracklet a person answered or a tag read is never taken out as a twin: it is solved.
    """
    by_pen = overlaps_by_pen(record)
    host = np.full(len(data), -1, dtype=np.int64)
    found: dict[str, list[tuple[np.ndarray, TwinCandidates]]] = {}
    for (pen_id, _), rows in data.pen_days() if by_pen else ():
        if pen_id not in by_pen:
            continue
        keys = [(data.device_id[r], data.track_id[r]) for r in rows]
        eligible = np.array(
            [
                data.tag_id[r] is None and k not in answers.must and k not in answers.cannot
                for r, k in zip(rows, keys, strict=True)
            ]
        )
        day = twin_candidates(
            data.pen_day(rows), by_pen[pen_id], eligible, look, data.path_of(rows)
        )
        if day is not None:
            found.setdefault(pen_id, []).append((rows, day))
    for pen_id, days in found.items():
        # One map per camera pair of the pen, from all its days (views don't move daily),
        # starting from the last run's where its days have too few pairs to fit one.
        maps[pen_id] = learn_camera_maps([d for _, d in days], maps.get(pen_id))
        for rows, day in days:
            twin_of = decide_twins(day, maps[pen_id])
            twin = twin_of >= 0
            host[rows[twin]] = rows[twin_of[twin]]
    if not (host >= 0).any():
        return data, []
    key = list(zip(data.device_id, data.track_id, strict=True))
    twins = [(key[r], key[host[r]]) for r in np.flatnonzero(host >= 0)]
    return data.take(np.flatnonzero(host < 0)), twins


def _with_twins(
    decisions: list[dict[str, object]],
    twins: list[tuple[tuple[str, str], tuple[str, str]]],
) -> list[dict[str, object]]:
    """Return the decisions with one for each twin: its host's animal, score, margin and
    confidence, decided automatically."""
    if not twins:
        return decisions
    by_key = {(d["device_id"], d["track_id"]): d for d in decisions}
    out = list(decisions)
    for (device_id, track_id), of in twins:
        out.append(
            {
                **by_key[of],
                "device_id": device_id,
                "track_id": track_id,
                "method": "auto",
                "decided_by": "system",
            }
        )
    return out


def _with_confidence(decisions: list[dict[str, object]], run: RunState) -> list[dict[str, object]]:
    """Return the decisions with the probability that each is right (`confidence`).

    People's answers and tag reads are the record's ground truth (1.0); every other link gets
    its cluster's posterior under the score spread of the whole run (None while unknown).
    """
    out: list[dict[str, object]] = []
    position = 0
    for scores, choice, clusters in run.scored:
        probability = run.spread.probabilities(scores, choice)
        for cluster in clusters:
            decision = decisions[position]
            position += 1
            value = probability[cluster]
            if decision["method"] in ("review", "tag"):
                confidence: float | None = 1.0
            elif decision["animal_id"] is None or not np.isfinite(value):
                confidence = None
            else:
                confidence = round(float(value), 4)
            out.append({**decision, "confidence": confidence})
    return out


@dataclass(frozen=True)
class Answers:
    """People's answers in force, by tracklet (device_id, track_id)."""

    must: dict[tuple[str, str], str]  # the animal it is: its latest must-link
    must_by: dict[tuple[str, str], str]  # who gave that answer
    cannot: dict[tuple[str, str], set[str]]  # the animals it is not


def read_answers(record: Record) -> Answers:
    """Return people's answers in force (the constraints, latest must-link first)."""
    constraints = record.dataset("constraints").to_table().to_pylist()
    answers = Answers({}, {}, defaultdict(set))
    # A stable sort: of answers given at one time (a merge's copies), the later row wins.
    for c in sorted(constraints, key=lambda c: c["decided_at"]):
        key = (c["device_id"], c["track_id"])
        if c["kind"] == "must_link":
            answers.must[key] = c["animal_id"]
            answers.must_by[key] = c["decided_by"]
        else:
            answers.cannot[key].add(c["animal_id"])
    return answers


def _learn_metric(
    record: Record,
    data: TrackletData,
    prepared: list[tuple[tuple[str, date], PenDayTracklets, np.ndarray]],
    must: dict[tuple[str, str], str],
) -> MetricFit:
    """Refit the record's metric on this run's constraints: the joins of the calibrated first
    pass (on raw looks), tag reads and answers; tracklets seen together are different."""
    if not prepared:
        return MetricFit(stored_metric(record), None)
    raw_model = fit_stitch_model(record, [(key[0], t) for key, t, _ in prepared])
    per_day = []
    for key, t, rows in prepared:
        label = first_pass(key[0], t, raw_model)
        tags: list[object] = [data.tag_id[r] for r in rows]
        named: list[object] = [must.get((data.device_id[r], data.track_id[r])) for r in rows]
        per_day.append((label, t.start_s, t.end_s, tags, named))
    x = np.concatenate([t.descriptor for _, t, _ in prepared])
    return learn_metric(record, x, constraint_pairs(per_day))


def _in_metric(t: PenDayTracklets, metric: Metric | None) -> PenDayTracklets:
    """Return the tracklets with their descriptors in the learned space (as they are if none)."""
    return t if metric is None else replace(t, descriptor=metric.apply(t.descriptor))


def _prepare(
    data: TrackletData,
    key: tuple[str, date],
    rows: np.ndarray,
    tracklets: PenDayTracklets,
    looked: PenDayTracklets,
    model: StitchModel,
    must: dict[tuple[str, str], str],
    metric: Metric | None,
) -> PenDayInput:
    keys = [(data.device_id[r], data.track_id[r]) for r in rows]
    label = _split_at_answers(stitch_pen_day(key[0], looked, model), keys, must)
    label = _part_rival_chains(label, keys, must, tracklets.start_s, tracklets.end_s)
    tags = [data.tag_id[r] for r in rows]
    clusters = make_clusters(tracklets, label, None if metric is None else metric.apply)
    cliques = concurrent_cliques(tracklets.start_s, tracklets.end_s, label)
    return PenDayInput(key[0], key[1], keys, tags, label, clusters, tracklets, cliques)


def _split_at_answers(
    label: np.ndarray, keys: list[tuple[str, str]], must: dict[tuple[str, str], str]
) -> np.ndarray:
    """Break continuation chains where people's answers name different animals.

    The tracker may have joined two animals; an answer is never overridden by a chain.
    Rows are in time order, so a chain's members are visited in the order they happened.
    """
    label = label.copy()
    next_label = int(label.max()) + 1 if len(label) else 0
    for cluster in np.unique(label):
        members = np.flatnonzero(label == cluster)
        named = {must[keys[m]] for m in members if keys[m] in must}
        if len(named) <= 1:
            continue
        current: str | None = None
        segment = int(cluster)
        for m in members:
            animal = must.get(keys[m])
            if animal is not None and current is not None and animal != current:
                segment, next_label = next_label, next_label + 1
            current = animal or current
            label[m] = segment
    return label


def _part_rival_chains(
    label: np.ndarray,
    keys: list[tuple[str, str]],
    must: dict[tuple[str, str], str],
    start_s: np.ndarray,
    end_s: np.ndarray,
) -> np.ndarray:
    """Take the answered tracklets out of chains that overlap in time another chain answered
    with the same animal.

    One animal cannot be in two places, so such chains are wrong somewhere, and an answer is
    never overridden by a chain: each answered tracklet of them becomes a cluster of its own,
    and the chain's other tracklets keep to their runs between answers. (Left as they were,
    the two anchors would clash and one answer would lose.)
    """
    label = label.copy()
    while True:
        named = {int(label[i]): must[key] for i, key in enumerate(keys) if key in must}
        k = int(label.max()) + 1 if len(label) else 0
        start, end = np.full(k, np.inf), np.full(k, -np.inf)
        np.minimum.at(start, label, start_s)
        np.maximum.at(end, label, end_s)
        size = np.bincount(label, minlength=k)
        rivals = [
            c
            for c in named
            if size[c] > 1
            and any(
                d != c and named[d] == named[c] and start[c] <= end[d] and start[d] <= end[c]
                for d in named
            )
        ]
        if not rivals:
            return label
        for cluster in rivals:
            fresh = iter([cluster, *range(k, k + size[cluster])])  # the chain's label first
            k += size[cluster]
            run = None
            for m in np.flatnonzero(label == cluster):  # in time order
                if keys[m] in must:
                    label[m], run = next(fresh), None
                else:
                    run = next(fresh) if run is None else run
                    label[m] = run
        label = np.unique(label, return_inverse=True)[1].astype(label.dtype)  # no gaps


def _calibrate(
    pen_days: list[PenDayInput],
    config: LinkingConfig,
    look: Callable[[np.ndarray], np.ndarray] | None,
) -> float:
    """Return the open-set threshold from this run's own genuine and impostor pairs.

    Genuine: the two halves of a continuation chain (the same animal, by the tracker).
    Impostor: clusters seen at the same time in one pen (different animals, by physics).
    """
    genuine: list[float] = []
    impostor: list[float] = []
    for pen in pen_days:
        clusters = pen.clusters
        i, j = overlapping_pairs(clusters.start_s, clusters.end_s, MAX_PAIRS_PER_PEN_DAY)
        if len(i):
            pick = np.linspace(0, len(i) - 1, min(len(i), 2000)).astype(int)
            sims = np.einsum("nd,nd->n", clusters.descriptor[i[pick]], clusters.descriptor[j[pick]])
            impostor.extend(sims.tolist())
        genuine.extend(_half_chain_similarities(pen, look))
    return calibrate_threshold(np.array(genuine), np.array(impostor), config.default_threshold)


def _half_chain_similarities(
    pen: PenDayInput, look: Callable[[np.ndarray], np.ndarray] | None
) -> list[float]:
    """Return the similarity of each chain's two halves, scored as clusters are."""
    halves = []
    t = pen.tracklets
    for c in np.flatnonzero(np.bincount(pen.label) >= 2):
        members = np.flatnonzero(pen.label == c)
        half = len(members) // 2
        for part in (members[:half], members[half:]):
            halves.append(normalise((t.descriptor[part] * t.weight[part, None]).sum(0)))
    if not halves:
        return []
    vectors = np.stack(halves).astype(np.float32)
    if look is not None:
        vectors = look(vectors)
    sims: list[float] = np.einsum("nd,nd->n", vectors[0::2], vectors[1::2]).tolist()
    return sims


def _animal_states(
    record: Record, solving: set[tuple[str, str]]
) -> tuple[dict[str, AnimalState], TagDays]:
    """Return every animal's status, tag, and pen and day it was last seen outside `solving`;
    and, for each tag not bound to an animal, the days its reads outside `solving` were
    linked to each animal (`state.tag_owner`)."""
    table = record.dataset("animals").to_table(columns=["animal_id", "tag_id", "pen_id", "status"])
    departed: dict[str, date] = {}
    for event in current_events(record).to_pylist():
        if event["kind"] in DEPARTURES:
            day = event["at"].astimezone(UTC).date()
            departed[event["animal_id"]] = min(day, departed.get(event["animal_id"], day))
    states = {
        row["animal_id"]: AnimalState(
            row["pen_id"], None, row["tag_id"], row["status"], departed.get(row["animal_id"])
        )
        for row in table.to_pylist()
    }
    links = record.dataset("links").to_table(
        columns=["device_id", "track_id", "animal_id", "decided_at"]
    )
    if links.num_rows == 0:
        return states, {}
    tracklets = record.read_visible(
        "tracklets", ["device_id", "track_id", "pen_id", "start", "tag_id"]
    )
    con = duckdb.connect()
    con.register("links", links)
    con.register("tracklets", tracklets)
    solving_table = pa.table(
        {"device_id": [k[0] for k in solving], "track_id": [k[1] for k in solving]},
        schema=pa.schema([("device_id", pa.string()), ("track_id", pa.string())]),
    )
    con.register("solving", solving_table)
    # arg_max_null: a tracklet's latest decision counts even when it is "unknown" (NULL).
    # The tracklets linked outside this run, with their animal: read by both questions below.
    con.execute(
        "CREATE TEMP TABLE outside AS WITH current AS (SELECT device_id, track_id, "
        "arg_max_null(animal_id, decided_at) AS animal_id FROM links GROUP BY ALL) "
        "SELECT c.animal_id, t.pen_id, t.start, t.tag_id FROM current c "
        "JOIN tracklets t USING (device_id, track_id) "
        "ANTI JOIN solving s USING (device_id, track_id) WHERE c.animal_id IS NOT NULL"
    )
    rows = con.sql(
        "SELECT animal_id, arg_max(pen_id, start), CAST(timezone('UTC', max(start)) AS DATE) "
        "FROM outside GROUP BY animal_id"
    ).fetchall()
    for animal_id, pen_id, day in rows:
        if animal_id in states:
            states[animal_id].pen_id = pen_id
            states[animal_id].last_seen_day = day
    return states, _tag_days(con, states)


def _tag_days(con: duckdb.DuckDBPyConnection, states: dict[str, AnimalState]) -> TagDays:
    """Return, for each tag not bound to an animal, the days its reads in `outside` were
    linked to each animal; unbind a tag whose reads there name another owner (a relink of
    every day keeps the bindings it finds: nothing outside it says otherwise)."""
    reads = con.sql(
        "SELECT DISTINCT tag_id, animal_id, CAST(timezone('UTC', start) AS DATE) "
        "FROM outside WHERE tag_id IS NOT NULL"
    ).fetchall()
    tag_days: TagDays = {}
    for tag, animal_id, day in reads:
        if animal_id in states:
            tag_days.setdefault(tag, {}).setdefault(animal_id, set()).add(day)
    for animal_id, state in states.items():
        if state.tag_id and tag_owner(tag_days.get(state.tag_id, {})) not in (None, animal_id):
            state.tag_id = None
    bound = {s.tag_id for s in states.values() if s.tag_id}
    return {tag: days for tag, days in tag_days.items() if tag not in bound}


def _next_provisional_number(record: Record) -> int:
    ids = record.dataset("animals").to_table(columns=["animal_id"]).column("animal_id")
    numbers = [int(a[1:]) for a in ids.to_pylist() if a.startswith("P") and a[1:].isdigit()]
    return max(numbers, default=0) + 1


def _write(record: Record, decisions: list[dict[str, object]], run: RunState) -> None:
    """Write animals, then the pool, then the links (a crash before the links is re-solved)."""
    now = datetime.now(UTC)
    animals_table = record.table("animals")
    existing = animals_table.to_lance().to_table()
    rows = []
    known = {r["animal_id"]: r for r in existing.to_pylist()}
    for animal_id, state in run.animals.items():
        row = known.get(animal_id)
        if row is None:
            row = {
                "animal_id": animal_id,
                "display_name": None,
                "tag_id": state.tag_id,
                "species": "pig",
                "sex": None,
                "birth_date": None,
                "pen_id": state.pen_id,
                "status": "active",
                "provisional": True,
                "merged_into": None,
                "created_at": now,
            }
        elif row["pen_id"] == state.pen_id and row["tag_id"] == state.tag_id:
            continue
        else:
            row = {**row, "pen_id": state.pen_id, "tag_id": state.tag_id}
        rows.append(row)
    new_animals = [str(r["animal_id"]) for r in rows if r["animal_id"] not in known]
    note_link_run(record, new_animals)  # a run killed before its links is undone on entry
    if rows:
        update = pa.Table.from_pylist(rows, schema=animals_table.schema)
        animals_table.merge_insert(
            "animal_id"
        ).when_matched_update_all().when_not_matched_insert_all().execute(update)
    write_pool(record, run.pool, run.index)
    if decisions:
        links = pa.Table.from_pylist(
            [{**d, "decided_at": now} for d in decisions],
            schema=record.table("links").schema,
        )
        record.table("links").add(links)
    link_run_done(record)


def linked_counts(record: Record) -> dict[str, int]:
    """Return how many tracklets are linked, unknown, and without a decision."""
    links = current_links(record)
    tracklets = record.read_visible("tracklets", ["device_id", "track_id"])
    linked = (
        int(pc.sum(pc.is_valid(links.column("animal_id"))).as_py() or 0) if links.num_rows else 0
    )
    return {
        "linked": linked,
        "unknown": links.num_rows - linked,
        "undecided": tracklets.num_rows - links.num_rows,
    }
