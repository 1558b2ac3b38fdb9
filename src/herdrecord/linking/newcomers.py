"""Newcomers to a pen-day: animals that moved in, and enrolment of animals never seen."""

from __future__ import annotations

from datetime import date

import numpy as np
from scipy.optimize import linear_sum_assignment

from herdrecord.linking.assignment import NEG, UNKNOWN, Clusters
from herdrecord.linking.intervals import any_overlap
from herdrecord.linking.poolindex import nearest_animals
from herdrecord.linking.state import AnimalState, PenDayInput, RunState
from herdrecord.reid.vectors import normalise


def rematch_day_identities(
    pen: PenDayInput,
    roster: list[str],
    choice: np.ndarray,
    anchors: dict[int, str],
    run: RunState,
) -> np.ndarray:
    """Match the pen-day's identities to animals jointly, each by its whole day.

    The clique-by-clique assignment decides one stretch of the day at a time; a day's
    identity (every cluster given one animal) is far stronger evidence than any one of them.
    One Hungarian assignment of the day's identities to the roster animals they could be, on
    their day centroids against the pool, may hand whole identities to other animals. Anchored
    identities stay; people's cannot-link answers are kept. An identity is never undone here
    merely because it looks unlike every animal: only the head count makes a newcomer.
    """
    clusters = pen.clusters
    anchored_columns = {int(c) for c in choice[list(anchors)]} if anchors else set()
    columns = [
        c
        for c in sorted(set(choice[choice >= 0].tolist()))
        if c not in anchored_columns and roster[c] in run.pool.animals
    ]
    free_animals = [
        c
        for c, a in enumerate(roster)
        if c not in anchored_columns and a in run.pool.animals and run.animals[a].present(pen.day)
    ]
    if len(columns) < 2 or not free_animals:
        return choice
    centroids = np.stack([day_centroid(clusters, np.flatnonzero(choice == c)) for c in columns])
    scores = run.pool.scores(centroids, [roster[c] for c in free_animals]).astype(np.float64)
    for g, column in enumerate(columns):
        members = np.flatnonzero(choice == column)
        for i, key in enumerate(pen.keys):
            if int(pen.label[i]) in members:
                for animal_id in run.cannot.get(key, ()):
                    if animal_id in roster and roster.index(animal_id) in free_animals:
                        scores[g, free_animals.index(roster.index(animal_id))] = NEG
    rows, picked = linear_sum_assignment(scores, maximize=True)
    out = choice.copy()
    for g, p in zip(rows.tolist(), picked.tolist(), strict=True):
        if scores[g, p] > NEG / 2 and free_animals[p] != columns[g]:
            out[choice == columns[g]] = free_animals[p]
    for column in set(columns) - set(out[out >= 0].tolist()):
        if run.seen_today.get(roster[column]) == pen.pen_id:
            del run.seen_today[roster[column]]
    return out


def day_centroid(clusters: Clusters, members: np.ndarray) -> np.ndarray:
    """Return the weighted mean look of the given clusters, unit length (a day identity's)."""
    return np.asarray(
        normalise((clusters.descriptor[members] * clusters.weight[members, None]).sum(0))
    )


def _away(animal_id: str, roster: list[str], run: RunState, day: date) -> bool:
    """Return whether an animal could have moved into this pen today."""
    state = run.animals[animal_id]
    return (
        state.present(day)
        and animal_id not in roster
        and animal_id in run.pool.animals
        and animal_id not in run.seen_today
    )


def add_movers(pen: PenDayInput, roster: list[str], choice: np.ndarray, run: RunState) -> bool:
    """Add to the roster animals from elsewhere that match clusters left unknown."""
    unknown = np.flatnonzero(choice == UNKNOWN)
    elsewhere = [a for a in run.animals if _away(a, roster, run, pen.day)]
    if len(unknown) == 0 or not elsewhere:
        return False
    # FAISS narrows the whole pool to a few candidates per cluster; the pool scores them.
    # The index holds the pool's own vectors; the pool scores in the learned metric.
    near = nearest_animals(run.index, run.owners, pen.clusters.raw[unknown], set(elsewhere))
    descriptors = pen.clusters.descriptor[unknown]
    shortlist = sorted({a for found in near for a in found})
    if not shortlist:
        return False
    outside = run.pool.scores(descriptors, shortlist)
    hits = np.flatnonzero(outside.max(axis=1) >= run.threshold)
    movers = sorted({shortlist[int(outside[i].argmax())] for i in hits})
    roster.extend(movers)
    return bool(movers)


def enrol(
    pen: PenDayInput,
    roster: list[str],
    choice: np.ndarray,
    anchors: dict[int, str],
    run: RunState,
    limit: int,
) -> list[str]:
    """Enrol the `limit` newcomers the head count says arrived; return their ids.

    The pen-day's most concurrent stretch has one cluster per animal present. Its clusters
    are matched jointly to the known animals plus `limit` new ones (one Hungarian
    assignment; all must be placed, so no threshold is needed): the clusters that fit no
    known animal as well as the others fit theirs seed the newcomers. Anchored clusters are
    known animals. The joint assignment that follows lets the other unknowns join the seeds
    they resemble, and settling decides which seeds gathered enough evidence.
    """
    clusters = pen.clusters
    if limit <= 0 or not pen.cliques or not (choice == UNKNOWN).any():
        return []
    largest = np.array(max(pen.cliques, key=lambda c: (len(c), clusters.weight[c].sum())))
    known = [a for a in roster if a in run.pool.animals]
    scores = run.pool.scores(clusters.descriptor[largest], known).astype(np.float64)
    fresh = np.zeros((len(largest), limit))
    fresh[[i for i, c in enumerate(largest.tolist()) if c in anchors]] = NEG
    rows, columns = linear_sum_assignment(np.hstack([scores, fresh]), maximize=True)
    seeds = sorted(int(largest[r]) for r, c in zip(rows, columns, strict=True) if c >= len(known))
    groups = [np.array([c]) for c in seeds]
    seeded = []
    for group in groups:
        animal_id = run.new_animal_id()
        seeded.append(animal_id)
        run.animals[animal_id] = AnimalState(
            pen.pen_id, pen.day, None, "active", enrolled_on=pen.day
        )
        centroid = normalise((clusters.raw[group] * clusters.weight[group, None]).sum(0))
        origin = ("", f"enrol:{pen.day}", pen.pen_id)
        run.pool.add(animal_id, centroid, float(clusters.end_s[group].max()), 0.0, origin)
        roster.append(animal_id)
    return seeded


def settle_enrolments(
    pen: PenDayInput, roster: list[str], choice: np.ndarray, seeded: list[str], run: RunState
) -> np.ndarray:
    """Keep the enrolments that are new animals; fold the others back or undo them.

    A seed that gathered too little evidence is undone (its clusters stay unknown). A seed
    whose day centroid matches an animal already on the roster, and that never overlaps that
    animal today, was that animal in an unusual pose or light: its clusters go to it.
    """
    clusters = pen.clusters
    choice = choice.copy()
    known = [c for c, a in enumerate(roster) if a not in seeded and a in run.pool.animals]
    kept_seeds: list[int] = []
    for animal_id in seeded:
        column = roster.index(animal_id)
        members = np.flatnonzero(choice == column)
        if clusters.duration_s[members].sum() < _enrol_floor_s(pen, run):
            choice[members] = UNKNOWN
            del run.animals[animal_id]
            continue
        centroid = normalise((clusters.descriptor[members] * clusters.weight[members, None]).sum(0))
        target = _same_as_known(centroid, members, choice, known, roster, pen, run)
        if target is None:
            # Two seeds can be one animal: one seeded in a later round from clusters that
            # looked unlike the first seed alone, but like its whole day.
            target = _same_as_seed(centroid, members, choice, kept_seeds, pen, run.threshold)
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


def _enrol_floor_s(pen: PenDayInput, run: RunState) -> float:
    """Return the tracked seconds a newcomer needs on its first day: a share of what one
    animal of this pen-day is typically tracked (the pen's most concurrent stretch says how
    many share the day), so the rule scales with the barn's coverage, not a clock."""
    clusters = pen.clusters
    head_count = max((len(c) for c in pen.cliques), default=1)
    typical = float(clusters.duration_s.sum()) / max(head_count, 1)
    return run.config.min_enrol_share * typical


def _same_as_seed(
    centroid: np.ndarray,
    members: np.ndarray,
    choice: np.ndarray,
    kept_seeds: list[int],
    pen: PenDayInput,
    threshold: float,
) -> int | None:
    """Return the column of an already kept seed whose day centroid the seed matches."""
    clusters = pen.clusters
    best, best_score = None, -1.0
    for column in kept_seeds:
        theirs = np.flatnonzero(choice == column)
        if len(theirs) == 0 or _seen_together(pen, members, theirs):
            continue
        other = normalise((clusters.descriptor[theirs] * clusters.weight[theirs, None]).sum(0))
        score = float(centroid @ other)
        if score > best_score:
            best, best_score = column, score
    return best if best is not None and best_score >= threshold else None


def _same_as_known(
    centroid: np.ndarray,
    members: np.ndarray,
    choice: np.ndarray,
    known: list[int],
    roster: list[str],
    pen: PenDayInput,
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
        theirs = np.flatnonzero(choice == target)
        if not _seen_together(pen, members, theirs):
            return target
    return None


def _seen_together(pen: PenDayInput, members: np.ndarray, theirs: np.ndarray) -> bool:
    """Return whether a tracklet of clusters `members` ran at the same time as one of
    clusters `theirs`. Tracklets, not the clusters' spans: two chains of one animal that
    take turns (on two cameras whose views meet, say) span the same hours and are never
    seen at once."""
    t = pen.tracklets
    mine = np.flatnonzero(np.isin(pen.label, members))
    other = np.flatnonzero(np.isin(pen.label, theirs))
    return any_overlap(t.start_s, t.end_s, mine, other)


def _same_as_absent(
    centroid: np.ndarray, pen: PenDayInput, roster: list[str], run: RunState
) -> str | None:
    """Return an active animal not on the roster and not seen elsewhere today that the seed
    matches above the threshold (the best such), if any."""
    absent = [a for a in run.animals if _away(a, roster, run, pen.day)]
    if not absent:
        return None
    sims = run.pool.scores(centroid[None, :], absent)[0]
    best = int(np.argmax(sims))
    return absent[best] if sims[best] >= run.threshold else None
