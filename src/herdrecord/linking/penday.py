"""Solve one pen-day: roster, anchors, joint assignment, movers, enrolment, pool upkeep."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import numpy as np

from herdrecord.linking.assignment import (
    NEG,
    UNKNOWN,
    Clusters,
    day_scores,
    margins,
    solve,
)
from herdrecord.linking.intervals import overlapping
from herdrecord.linking.newcomers import (
    add_movers,
    day_centroid,
    enrol,
    rematch_day_identities,
    settle_enrolments,
)
from herdrecord.linking.state import PenDayInput, RunState, tag_owner
from herdrecord.reid.vectors import normalise

ENROLMENT_ROUNDS = 3  # seed, assign, and seed again from what is still unknown (bounded)
# New animals one pen-day may enrol at most. A pen holds tens of animals (a large group pen a
# few hundred, arriving over days); a day that shows thousands at once is a broken tracker or
# a crafted upload, and enrolling each would cost time and memory in the square of their
# number (50,000 copies of one tracklet: a 50,000 x 50,000 assignment). Past it, the rest of
# the day's clusters stay unknown (a pen of more enrols the rest on the days after).
MAX_ENROLMENTS_PER_PEN_DAY = 200
REFINEMENTS = 3  # rounds of "score against today's centroids, solve again"; converges fast


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
        if state.present(pen.day)
        and state.pen_id == pen.pen_id
        and (
            state.last_seen_day is None
            or (pen.day - state.last_seen_day).days <= config.roster_absent_days
        )
    ]
    anchors = _anchors(pen, run, roster)
    roster += [a for a in dict.fromkeys(anchors.values()) if a not in roster and a in run.animals]
    choice, scores = _assign(pen, roster, anchors, run)
    for column in set(choice[choice >= 0].tolist()):
        run.seen_today[roster[column]] = pen.pen_id
    return RosterSolution(roster, anchors, choice, scores)


def finish_pen_day(
    pen: PenDayInput, solved: RosterSolution, run: RunState
) -> list[dict[str, object]]:
    """Find movers and enrol newcomers for what the roster left unknown; return the links."""
    roster, anchors, choice, scores = solved.roster, solved.anchors, solved.choice, solved.scores
    choice = rematch_day_identities(pen, roster, choice, anchors, run)
    if add_movers(pen, roster, choice, run):
        choice, scores = _assign(pen, roster, anchors, run)
        choice = rematch_day_identities(pen, roster, choice, anchors, run)
    seeded: list[str] = []
    # The head count: the most clusters running at once, against the animals that could be
    # them; only the difference may be new.
    head_count = max((len(c) for c in pen.cliques), default=0)
    known = sum(1 for a in roster if a in run.pool.animals)
    for _ in range(ENROLMENT_ROUNDS):
        unknown_s = pen.clusters.duration_s[choice == UNKNOWN].sum()
        if unknown_s <= 0:
            break
        limit = min(head_count - known, MAX_ENROLMENTS_PER_PEN_DAY) - len(seeded)
        added = enrol(pen, roster, choice, anchors, run, limit)
        if not added:
            break
        seeded += added
        choice, scores = _assign(pen, roster, anchors, run)
        choice = rematch_day_identities(pen, roster, choice, anchors, run)
    if seeded:
        choice = settle_enrolments(pen, roster, choice, seeded, run)
        if len(roster) > scores.shape[1]:  # settling found animals that moved in
            extra = run.pool.scores(pen.clusters.descriptor, roster[scores.shape[1] :])
            scores = np.hstack([scores, extra])
        for animal_id in seeded:
            run.pool.remove_animal(animal_id)  # re-seeded below from its final clusters
    for column in set(choice[choice >= 0].tolist()):
        run.seen_today[roster[column]] = pen.pen_id
    chosen, lead = margins(scores, choice)
    by_identity, whole_day = _identity_scores(pen.clusters, pen.day, roster, choice, scores, run)
    _feed_pool(pen, roster, choice, lead, anchors, run)
    # The spread is learned from identities scored against the pool of earlier days only (an
    # animal enrolled today matches its own new exemplars, which says nothing of the rest).
    run.spread.add(by_identity[whole_day], choice[whole_day])
    run.scored.append((by_identity, choice, [int(c) for c in pen.label]))
    return _decisions(pen, roster, choice, chosen, lead, anchors, run)


def _identity_scores(
    clusters: Clusters,
    pen_day: date,
    roster: list[str],
    choice: np.ndarray,
    scores: np.ndarray,
    run: RunState,
) -> tuple[np.ndarray, np.ndarray]:
    """Return each cluster's row of scores as its day identity scores: the whole day's look of
    every cluster given the same animal, against each animal's pool (before today feeds it).

    A link is decided by its identity (continuity and the head count hold a day's clusters
    together), so its confidence is that of the identity, not of its one cluster's look.
    An animal enrolled today has no earlier look to be sure against: its clusters' rows are
    left unscored (their links carry no confidence). Also returns which clusters' rows are
    their identity's.
    """
    out = scores.copy()
    whole_day = np.zeros(len(choice), dtype=bool)
    for c in set(choice[choice >= 0].tolist()):
        if run.animals[roster[c]].enrolled_on == pen_day:
            out[choice == c] = NEG  # new today: nothing earlier to be sure against

    in_pool = [a for a in roster if a in run.pool.animals]
    columns = [
        c
        for c in sorted(set(choice[choice >= 0].tolist()))
        if roster[c] in run.pool.animals and run.animals[roster[c]].enrolled_on != pen_day
    ]
    if not columns or not in_pool:
        return out, whole_day
    centroids = np.stack([day_centroid(clusters, np.flatnonzero(choice == c)) for c in columns])
    pooled = run.pool.scores(centroids, in_pool).astype(np.float64)
    where = [roster.index(a) for a in in_pool]
    for g, column in enumerate(columns):
        members = np.flatnonzero(choice == column)
        row = np.full(scores.shape[1], NEG)
        row[where] = pooled[g]
        # What a person ruled out (or no pool) for any member stays ruled out.
        row[(scores[members] <= NEG / 2).any(axis=0)] = NEG
        out[members] = row
        whole_day[members] = True
    return out, whole_day


def solve_day(pens: list[PenDayInput], run: RunState) -> list[dict[str, object]]:
    """Decide every tracklet of one day's pens: rosters first, then movers and newcomers."""
    run.seen_today = {}
    solved = [solve_roster(pen, run) for pen in pens]
    decisions: list[dict[str, object]] = []
    for pen, solution in zip(pens, solved, strict=True):
        decisions.extend(finish_pen_day(pen, solution, run))
    return decisions


def _anchors(pen: PenDayInput, run: RunState, roster: list[str]) -> dict[int, str]:
    """Return cluster -> animal fixed by people's answers (first) and tag reads.

    An answer outranks a tag read: a tag read that would put the answered animal in a second
    place at the same time (a misread, a tag moved to another animal) anchors nothing, and
    nor does one whose chain the look rules out for the tag's animal and gives another
    animal of the `roster` (`_unless_the_look_refutes`)."""
    by_tag = {s.tag_id: a for a, s in run.animals.items() if s.tag_id and s.present(pen.day)}
    anchors: dict[int, str] = {}
    for i, key in enumerate(pen.keys):
        animal_id = run.must.get(key)
        state = run.animals.get(animal_id) if animal_id else None
        if animal_id is not None and state is not None and state.status != "merged":
            anchors[int(pen.label[i])] = animal_id
    answered = dict(anchors)
    start, end = pen.clusters.start_s, pen.clusters.end_s
    for i, tag in enumerate(pen.tag_id):
        cluster = int(pen.label[i])
        if not tag or cluster in anchors or tag not in by_tag:
            continue
        animal_id = by_tag[tag]
        if any(
            named == animal_id and start[c] <= end[cluster] and start[cluster] <= end[c]
            for c, named in answered.items()
        ):
            continue
        anchors[cluster] = animal_id
    return _unless_the_look_refutes(pen, roster, anchors, set(answered), run)


def _unless_the_look_refutes(
    pen: PenDayInput, roster: list[str], anchors: dict[int, str], answered: set[int], run: RunState
) -> dict[int, str]:
    """Return the anchors less the tag reads whose chain the look says is not the tag's
    animal but another of the roster.

    A read names the animal at the feeder in one tracklet; the chain it is in may have
    joined another animal's tracklets to it (a wrong join, a switch inside a tracklet). Let
    the read anchor such a chain and the other animal's whole day follows it, and the two
    trade identities for the day. So a read anchors its chain unless the chain scores below
    the record's open-set threshold against the tag's animal and at or above it against
    another animal of the roster. A chain that merely looks a little more like another
    animal keeps its anchor: the look is what the tag is there to correct (a margin of the
    look instead dropped right anchors of a pure chain whose animal had drifted).
    """
    tagged = [c for c in anchors if c not in answered and anchors[c] in run.pool.animals]
    candidates = [a for a in roster if a in run.pool.animals]
    if not tagged or not candidates:
        return anchors
    named = [anchors[c] for c in tagged]
    scores = run.pool.scores(pen.clusters.descriptor[tagged], [*candidates, *named])
    kept = dict(anchors)
    for row, cluster in enumerate(tagged):
        own = scores[row, len(candidates) + row]
        if own < run.threshold <= scores[row, : len(candidates)].max():
            del kept[cluster]
    return kept


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
    for cluster in np.argsort(-clusters.weight):
        if fixed[cluster] == UNKNOWN:
            continue
        together = overlapping(clusters.start_s, clusters.end_s, int(cluster))
        rivals = np.flatnonzero(together & (fixed == fixed[cluster]))
        fixed[[r for r in rivals if r != cluster]] = UNKNOWN
    return fixed


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
        # An animal with no exemplar yet (one enrolled today) learns from all of its day.
        unseen = roster[int(column)] not in run.pool.animals
        if cluster in anchors or unseen or lead[cluster] >= run.config.confident_margin:
            members[int(column)].append(cluster)
    for column, chosen in members.items():
        weight = clusters.weight[chosen]
        centroid = normalise((clusters.raw[chosen] * weight[:, None]).sum(axis=0))
        longest = chosen[int(np.argmax(clusters.duration_s[chosen]))]
        device_id, track_id = first_key[longest]
        run.pool.add(
            roster[column],
            centroid,
            float(clusters.end_s[chosen].max()),
            float(clusters.duration_s[chosen].sum()),
            (device_id, track_id, pen.pen_id),
        )
    _bind_tags(pen, roster, choice, run)


def _bind_tags(pen: PenDayInput, roster: list[str], choice: np.ndarray, run: RunState) -> None:
    """Note the pen-day's reads of unbound tags by the animal each was linked to, and bind a
    tag to an untagged animal once its reads agree (`state.tag_owner`)."""
    tags_in_use = {s.tag_id for s in run.animals.values() if s.tag_id}
    read: set[str] = set()
    for i, tag in enumerate(pen.tag_id):
        column = int(choice[int(pen.label[i])])
        if tag and column >= 0 and tag not in tags_in_use:
            run.tag_days.setdefault(tag, {}).setdefault(roster[column], set()).add(pen.day)
            read.add(tag)
    for tag in sorted(read):
        owner = tag_owner(run.tag_days[tag])
        if owner is not None and run.animals[owner].tag_id is None:
            run.animals[owner].tag_id = tag
            del run.tag_days[tag]


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
