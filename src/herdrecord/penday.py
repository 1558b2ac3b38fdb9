"""Solve one pen-day: roster, anchors, joint assignment, movers, enrolment, pool upkeep."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

import numpy as np

from herdrecord.assignment import (
    NEG,
    UNKNOWN,
    Clusters,
    ContinuationRule,
    PenDayTracklets,
    day_scores,
    margins,
    maximal_cliques,
    normalise,
    overlaps,
    solve,
)
from herdrecord.pool import DEFAULT_EXEMPLARS_PER_ANIMAL, Pool
from herdrecord.poolindex import nearest_animals
from herdrecord.reid import FaissIndex

ENROLMENT_ROUNDS = 3  # seed, assign, and seed again from what is still unknown
# Two day centroids (hours of evidence each) of one animal agree far above any threshold set
# for single clusters; on the simulator same-animal centroids are >= 0.8 and others <= 0.15
# (near-twins aside, and twins are seen together, which rules them out).
SAME_DAY_CENTROID = 0.5
VERIFY_MIN_S = 3600.0  # a day's centroid is checked against the pool from an hour of tracking
REFINEMENTS = 3  # rounds of "score against today's centroids, solve again"; converges fast


@dataclass(frozen=True)
class LinkingConfig:
    """Knobs of linking; the open-set threshold itself is calibrated from the record's data."""

    continuation: ContinuationRule = field(default_factory=ContinuationRule)
    exemplars_per_animal: int = DEFAULT_EXEMPLARS_PER_ANIMAL
    min_enrol_s: float = 7200.0  # tracked seconds a new animal needs on its first day
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
    seen_today: dict[str, str] = field(default_factory=dict)  # animal -> pen, for the day

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
    cliques: list[list[int]]  # maximal cliques of the clusters' time intervals, in order


@dataclass
class RosterSolution:
    """A pen-day solved against its own roster only (the first phase of a day)."""

    roster: list[str]
    anchors: dict[int, str]
    choice: np.ndarray
    scores: np.ndarray


def solve_roster(pen: PenDayInput, run: RunState) -> RosterSolution:
    """Assign the pen-day's clusters to the animals of its roster (anchors first).

    Every pen of a day goes through this before any pen looks for animals from elsewhere,
    so that an animal seen at home that day is never taken for a newcomer in another pen.
    """
    config = run.config
    # The day's own earlier exemplars would vouch for whatever was decided before: drop them.
    day_start = datetime.combine(pen.day, time(), tzinfo=UTC).timestamp()
    run.pool.drop_observed(pen.pen_id, day_start, day_start + 86_400)
    roster = [
        animal_id
        for animal_id, state in run.animals.items()
        if state.status == "active"
        and state.pen_id == pen.pen_id
        and (
            state.last_seen_day is None
            or (pen.day - state.last_seen_day).days <= config.roster_absent_days
        )
    ]
    anchors = _anchors(pen, run)
    roster += [a for a in dict.fromkeys(anchors.values()) if a not in roster and a in run.animals]
    choice, scores = _assign(pen, roster, anchors, run)
    for column in set(choice[choice >= 0].tolist()):
        run.seen_today[roster[column]] = pen.pen_id
    return RosterSolution(roster, anchors, choice, scores)


def finish_pen_day(
    pen: PenDayInput, solved: RosterSolution, run: RunState
) -> list[dict[str, object]]:
    """Find movers and enrol newcomers for what the roster left unknown; return the links."""
    config = run.config
    roster, anchors, choice, scores = solved.roster, solved.anchors, solved.choice, solved.scores
    choice = _verify_day_identities(pen, roster, choice, anchors, run)
    if _add_movers(pen, roster, choice, run):
        choice, scores = _assign(pen, roster, anchors, run)
    seeded: list[str] = []
    for _ in range(ENROLMENT_ROUNDS):
        unknown_s = pen.clusters.duration_s[choice == UNKNOWN].sum()
        if unknown_s < config.min_enrol_s:
            break
        seeded += _enrol(pen, roster, choice, run)
        choice, scores = _assign(pen, roster, anchors, run)
    if seeded:
        choice = _settle_enrolments(pen, roster, choice, seeded, run)
        if len(roster) > scores.shape[1]:  # settling found animals that moved in
            extra = run.pool.scores(pen.clusters.descriptor, roster[scores.shape[1] :])
            scores = np.hstack([scores, extra])
        for animal_id in seeded:
            run.pool.remove_animal(animal_id)  # re-seeded below from its final clusters
    for column in set(choice[choice >= 0].tolist()):
        run.seen_today[roster[column]] = pen.pen_id
    chosen, lead = margins(scores, choice)
    _feed_pool(pen, roster, choice, lead, anchors, run)
    return _decisions(pen, roster, choice, chosen, lead, anchors, run)


def _verify_day_identities(
    pen: PenDayInput,
    roster: list[str],
    choice: np.ndarray,
    anchors: dict[int, str],
    run: RunState,
) -> np.ndarray:
    """Undo a roster animal's day when its whole day does not look like it.

    Single clusters are noisy, so an animal that left unannounced can hand its identity to a
    newcomer one cluster at a time. The day's centroid of all its clusters is not noisy: if
    it does not match the animal's pool, those clusters were someone else, and go back to
    unknown for the search of animals from elsewhere and enrolment.
    """
    choice = choice.copy()
    clusters = pen.clusters
    anchored = np.zeros(len(choice), dtype=bool)
    anchored[list(anchors)] = True
    for column in sorted(set(choice[choice >= 0].tolist())):
        members = np.flatnonzero(choice == column)
        animal_id = roster[column]
        if anchored[members].any() or animal_id not in run.pool.animals:
            continue
        if clusters.duration_s[members].sum() < VERIFY_MIN_S:
            continue
        weight = clusters.weight[members, None]
        centroid = normalise((clusters.descriptor[members] * weight).sum(axis=0))
        if run.pool.scores(centroid[None, :], [animal_id])[0, 0] < SAME_DAY_CENTROID:
            choice[members] = UNKNOWN
            if run.seen_today.get(animal_id) == pen.pen_id:
                del run.seen_today[animal_id]
    return choice


def solve_day(pens: list[PenDayInput], run: RunState) -> list[dict[str, object]]:
    """Decide every tracklet of one day's pens: rosters first, then movers and newcomers."""
    run.seen_today = {}
    solved = [solve_roster(pen, run) for pen in pens]
    decisions: list[dict[str, object]] = []
    for pen, solution in zip(pens, solved, strict=True):
        decisions.extend(finish_pen_day(pen, solution, run))
    return decisions


def _away(animal_id: str, roster: list[str], run: RunState) -> bool:
    """Return whether an animal could have moved into this pen today."""
    state = run.animals[animal_id]
    return (
        state.status == "active"
        and animal_id not in roster
        and animal_id in run.pool.animals
        and animal_id not in run.seen_today
    )


def _anchors(pen: PenDayInput, run: RunState) -> dict[int, str]:
    """Return cluster -> animal fixed by people's answers (first) and tag reads."""
    by_tag = {s.tag_id: a for a, s in run.animals.items() if s.tag_id and s.status == "active"}
    anchors: dict[int, str] = {}
    for i, key in enumerate(pen.keys):
        animal_id = run.must.get(key)
        state = run.animals.get(animal_id) if animal_id else None
        if animal_id is not None and state is not None and state.status != "merged":
            anchors[int(pen.label[i])] = animal_id
    for i, tag in enumerate(pen.tag_id):
        cluster = int(pen.label[i])
        if tag and cluster not in anchors and tag in by_tag:
            anchors[cluster] = by_tag[tag]
    return anchors


def _assign(
    pen: PenDayInput, roster: list[str], anchors: dict[int, str], run: RunState
) -> tuple[np.ndarray, np.ndarray]:
    """Return each cluster's roster column (or UNKNOWN) and the scores it was chosen on."""
    clusters = pen.clusters
    base = run.pool.scores(clusters.descriptor, roster).astype(np.float64)
    has_pool = np.array([a in run.pool.animals for a in roster], dtype=bool)
    forbidden = np.zeros(base.shape, dtype=bool)
    column = {animal_id: c for c, animal_id in enumerate(roster)}
    for i, key in enumerate(pen.keys):
        for animal_id in run.cannot.get(key, ()):
            if animal_id in column:
                forbidden[int(pen.label[i]), column[animal_id]] = True
    fixed = _fixed_columns(clusters, anchors, column)
    scores = np.where(forbidden, NEG, np.where(has_pool, base, NEG))
    choice = solve(scores, clusters.start_s, clusters.end_s, run.threshold, fixed, pen.cliques)
    for _ in range(REFINEMENTS):
        today = day_scores(clusters.descriptor, clusters.weight, choice, len(roster))
        blended = np.where(np.isnan(today), base, np.where(has_pool, (base + today) / 2, today))
        scores = np.where(forbidden | (~has_pool & np.isnan(today)), NEG, blended)
        refined = solve(scores, clusters.start_s, clusters.end_s, run.threshold, fixed, pen.cliques)
        if np.array_equal(refined, choice):
            break
        choice = refined
    return choice, scores


def _fixed_columns(
    clusters: Clusters, anchors: dict[int, str], column: dict[str, int]
) -> np.ndarray:
    """Return the anchored column per cluster; of two overlapping anchors of one animal, the
    one with more evidence keeps it (both cannot be right)."""
    fixed = np.full(len(clusters.weight), UNKNOWN)
    for cluster, animal_id in anchors.items():
        if animal_id in column:
            fixed[cluster] = column[animal_id]
    overlap = overlaps(clusters.start_s, clusters.end_s)
    for cluster in np.argsort(-clusters.weight):
        if fixed[cluster] == UNKNOWN:
            continue
        rivals = np.flatnonzero(overlap[cluster] & (fixed == fixed[cluster]))
        fixed[[r for r in rivals if r != cluster]] = UNKNOWN
    return fixed


def _add_movers(pen: PenDayInput, roster: list[str], choice: np.ndarray, run: RunState) -> bool:
    """Add to the roster animals from elsewhere that match clusters left unknown."""
    unknown = np.flatnonzero(choice == UNKNOWN)
    elsewhere = [a for a in run.animals if _away(a, roster, run)]
    if len(unknown) == 0 or not elsewhere:
        return False
    # FAISS narrows the whole pool to a few candidates per cluster; the pool scores them.
    descriptors = pen.clusters.descriptor[unknown]
    near = nearest_animals(run.index, run.owners, descriptors, set(elsewhere))
    shortlist = sorted({a for found in near for a in found})
    if not shortlist:
        return False
    outside = run.pool.scores(descriptors, shortlist)
    hits = np.flatnonzero(outside.max(axis=1) >= run.threshold)
    movers = sorted({shortlist[int(outside[i].argmax())] for i in hits})
    roster.extend(movers)
    return bool(movers)


def _enrol(pen: PenDayInput, roster: list[str], choice: np.ndarray, run: RunState) -> list[str]:
    """Enrol provisional animals for unknown clusters; return their ids.

    Unknown clusters that overlap in time are surely different animals, so every member of
    the largest such clique seeds one; the joint assignment that follows lets the other
    unknowns join the seeds they resemble, and decides which seeds gather enough evidence.
    """
    clusters = pen.clusters
    unknown = np.flatnonzero(choice == UNKNOWN)
    if len(unknown) == 0:
        return []
    cliques = maximal_cliques(clusters.start_s[unknown], clusters.end_s[unknown])
    largest = max(cliques, key=lambda c: (len(c), clusters.weight[unknown[c]].sum()))
    groups = [np.array([unknown[i]]) for i in largest]
    seeded = []
    for group in groups:
        animal_id = run.new_animal_id()
        seeded.append(animal_id)
        run.animals[animal_id] = AnimalState(pen.pen_id, pen.day, None, "active")
        centroid = normalise((clusters.descriptor[group] * clusters.weight[group, None]).sum(0))
        origin = ("", f"enrol:{pen.day}", pen.pen_id)
        run.pool.add(animal_id, centroid, float(clusters.end_s[group].max()), 0.0, origin)
        roster.append(animal_id)
    return seeded


def _settle_enrolments(
    pen: PenDayInput, roster: list[str], choice: np.ndarray, seeded: list[str], run: RunState
) -> np.ndarray:
    """Keep the enrolments that are new animals; fold the others back or undo them.

    A seed that gathered too little evidence is undone (its clusters stay unknown). A seed
    whose day centroid matches an animal already on the roster, and that never overlaps that
    animal today, was that animal in an unusual pose or light: its clusters go to it.
    """
    clusters = pen.clusters
    choice = choice.copy()
    overlap = overlaps(clusters.start_s, clusters.end_s)
    known = [c for c, a in enumerate(roster) if a not in seeded and a in run.pool.animals]
    kept_seeds: list[int] = []
    for animal_id in seeded:
        column = roster.index(animal_id)
        members = np.flatnonzero(choice == column)
        if clusters.duration_s[members].sum() < run.config.min_enrol_s:
            choice[members] = UNKNOWN
            del run.animals[animal_id]
            continue
        centroid = normalise((clusters.descriptor[members] * clusters.weight[members, None]).sum(0))
        target = _same_as_known(centroid, members, choice, known, roster, overlap, run)
        if target is None:
            # Two seeds can be one animal: one seeded in a later round from clusters that
            # looked unlike the first seed alone, but like its whole day.
            target = _same_as_seed(centroid, members, choice, kept_seeds, overlap, clusters)
        if target is None:
            mover = _same_as_absent(centroid, pen, roster, run)
            if mover is not None:
                # An animal from elsewhere whose single clusters were too weak to find it:
                # the day's centroid of all of them is strong enough. It moved here.
                roster.append(mover)
                target = len(roster) - 1
        if target is not None:
            choice[members] = target
            del run.animals[animal_id]
        else:
            run.enrolled.append(animal_id)
            kept_seeds.append(column)
    return choice


def _same_as_seed(
    centroid: np.ndarray,
    members: np.ndarray,
    choice: np.ndarray,
    kept_seeds: list[int],
    overlap: np.ndarray,
    clusters: Clusters,
) -> int | None:
    """Return the column of an already kept seed whose day centroid the seed matches."""
    best, best_score = None, -1.0
    for column in kept_seeds:
        theirs = np.flatnonzero(choice == column)
        if len(theirs) == 0 or overlap[np.ix_(members, theirs)].any():
            continue
        other = normalise((clusters.descriptor[theirs] * clusters.weight[theirs, None]).sum(0))
        score = float(centroid @ other)
        if score > best_score:
            best, best_score = column, score
    return best if best is not None and best_score >= SAME_DAY_CENTROID else None


def _same_as_known(
    centroid: np.ndarray,
    members: np.ndarray,
    choice: np.ndarray,
    known: list[int],
    roster: list[str],
    overlap: np.ndarray,
    run: RunState,
) -> int | None:
    """Return the roster column of a known animal the seed really is, if any."""
    if not known:
        return None
    sims = run.pool.scores(centroid[None, :], [roster[c] for c in known])[0]
    for best in np.argsort(-sims):
        if sims[best] < run.threshold:
            return None
        target = known[int(best)]
        if not overlap[np.ix_(members, np.flatnonzero(choice == target))].any():
            return target
    return None


def _same_as_absent(
    centroid: np.ndarray, pen: PenDayInput, roster: list[str], run: RunState
) -> str | None:
    """Return an active animal not on the roster and not seen elsewhere today that the seed
    matches above the threshold (the best such), if any."""
    absent = [a for a in run.animals if _away(a, roster, run)]
    if not absent:
        return None
    sims = run.pool.scores(centroid[None, :], absent)[0]
    best = int(np.argmax(sims))
    return absent[best] if sims[best] >= run.threshold else None


def _feed_pool(
    pen: PenDayInput,
    roster: list[str],
    choice: np.ndarray,
    lead: np.ndarray,
    anchors: dict[int, str],
    run: RunState,
) -> None:
    """Add each linked animal's confident centroid of the day to the pool; note where it was."""
    clusters = pen.clusters
    first_key = {int(pen.label[i]): pen.keys[i] for i in range(len(pen.keys) - 1, -1, -1)}
    members: dict[int, list[int]] = defaultdict(list)
    for cluster, column in enumerate(choice):
        if column < 0:
            continue
        state = run.animals[roster[int(column)]]
        state.pen_id, state.last_seen_day = pen.pen_id, pen.day
        if cluster in anchors or lead[cluster] >= run.config.confident_margin:
            members[int(column)].append(cluster)
    for column, chosen in members.items():
        weight = clusters.weight[chosen]
        centroid = normalise((clusters.descriptor[chosen] * weight[:, None]).sum(axis=0))
        longest = chosen[int(np.argmax(clusters.duration_s[chosen]))]
        device_id, track_id = first_key[longest]
        run.pool.add(
            roster[column],
            centroid,
            float(clusters.end_s[chosen].max()),
            float(clusters.duration_s[chosen].sum()),
            (device_id, track_id, pen.pen_id),
        )
    # A tag read on a tracklet of an untagged animal names that animal from now on.
    tags_in_use = {s.tag_id for s in run.animals.values() if s.tag_id}
    for i, tag in enumerate(pen.tag_id):
        column = int(choice[int(pen.label[i])])
        if tag and column >= 0 and tag not in tags_in_use:
            state = run.animals[roster[column]]
            if state.tag_id is None:
                state.tag_id = tag
                tags_in_use.add(tag)


def _decisions(
    pen: PenDayInput,
    roster: list[str],
    choice: np.ndarray,
    chosen: np.ndarray,
    lead: np.ndarray,
    anchors: dict[int, str],
    run: RunState,
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i, (device_id, track_id) in enumerate(pen.keys):
        cluster = int(pen.label[i])
        column = int(choice[cluster])
        animal_id = roster[column] if column >= 0 else None
        method = "auto"
        decided_by = "system"
        if animal_id is not None and run.must.get((device_id, track_id)) == animal_id:
            method, decided_by = "review", run.must_by[(device_id, track_id)]
        elif animal_id is not None and anchors.get(cluster) == animal_id:
            method = "tag" if pen.tag_id[i] else "anchored"
        out.append(
            {
                "device_id": device_id,
                "track_id": track_id,
                "animal_id": animal_id,
                "score": _finite(chosen[cluster]),
                "margin": _finite(lead[cluster]),
                "method": method,
                "decided_by": decided_by,
            }
        )
    return out


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) and value > NEG / 2 else None
