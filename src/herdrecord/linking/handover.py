"""Across midnight: the tracks that end a pen-day hand their animals to those that begin the next.

Pen-days are solved one at a time, but a barn does not stop at midnight: the animal whose track
ended at 23:59:40 is, more likely than not, the one whose track starts on the same camera at
00:00:55 a few pixels away. Within a day the calibrated join model (`stitching.py`) chains such
tracks; here the same model joins the last tracks of a pen-day to the first tracks of the next,
one to one (a track end hands over to at most one start), by gap and place only: appearance is
already what the day identity is matched to the pool on, and counting it twice would let the look
decide alone again. A join that is more likely than not (its marginal over the one-to-one
choices) is then evidence, in nats, that the next day's identity holding the start is the animal
that held the end; `newcomers.rematch_day_identities` adds it to
the identities' look against the pool (on one scale: the run's own score spread).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.optimize import minimize_scalar

from herdrecord.linking.stitching import (
    CUE_CLIP,
    MAX_CANDIDATES_PER_END,
    SEARCH_WINDOW_S,
    StitchModel,
)
from herdrecord.linking.tracklets import endpoints_of
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record

MIN_HANDOVERS = 20  # likely handovers needed before the look's weight is fitted
MAX_LEADS_KEPT = 200_000
K_BOUNDS = (0.5, 1000.0)  # nats per unit of cosine score: from a look worth little to one sure
MARGINAL_ROUNDS = 200  # scaling rounds for the join marginals (they settle in tens)
LOG_ODDS_CLIP = 30.0  # weights stay finite


@dataclass(frozen=True)
class Tails:
    """The tracks that end one pen-day (within the join window of midnight), and their animals."""

    pen_id: str
    day: date  # the pen-day they belong to
    camera: np.ndarray  # (k,) camera ids (object)
    end_s: np.ndarray  # (k,) seconds since the epoch
    last_xy: np.ndarray  # (k, 2) bbox centre of the last observation, px (NaN if none)
    animal_id: list[str | None]  # (k,) the animal each was linked to, None if unknown


def midnight_after(day: date) -> float:
    """Return the epoch seconds at which `day` (UTC) ends."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC).timestamp()


def tails_of(
    pen_id: str,
    day: date,
    camera: np.ndarray,
    end_s: np.ndarray,
    last_xy: np.ndarray,
    animal_id: list[str | None],
    window_s: float = SEARCH_WINDOW_S,
) -> Tails:
    """Return the tracks of a solved pen-day that end within the join window of its midnight."""
    rows = np.flatnonzero(end_s >= midnight_after(day) - window_s)
    return Tails(
        pen_id,
        day,
        camera[rows],
        end_s[rows],
        last_xy[rows],
        [animal_id[int(r)] for r in rows],
    )


def handover(
    tails: Tails | None,
    day: date,
    camera: np.ndarray,
    start_s: np.ndarray,
    first_xy: np.ndarray,
    model: StitchModel | None,
) -> dict[int, tuple[str, float]]:
    """Return, per track of `day` that a track of the day before more likely than not hands
    over to, that track's animal and the join's posterior log odds.

    `camera`, `start_s` and `first_xy` are the day's tracks (one pen); only those starting
    within the join window of midnight take part. Each candidate join (same camera, within
    the window) has its odds under the camera's fitted gap and place cues; a track end joins
    at most one start and a start at most one end, so the chance of each join is its marginal
    over all such one-to-one choices (`join_marginals`). Where the place at midnight says
    little (many ends and starts alike), no join is likely and nothing is handed over."""
    if tails is None or model is None or tails.day != day - timedelta(days=1):
        return {}
    midnight = midnight_after(tails.day)
    heads = np.flatnonzero(start_s < midnight + SEARCH_WINDOW_S)
    i, j = _candidates(tails.camera, tails.end_s, camera[heads], start_s[heads])
    if not len(i):
        return {}
    j = heads[j]
    gap_s = start_s[j] - tails.end_s[i]
    distance = np.linalg.norm(first_xy[j] - tails.last_xy[i], axis=1)
    odds = np.zeros(len(i))
    for cam in sorted(set(tails.camera[i].tolist())):
        mine = tails.camera[i] == cam
        fit = model.for_camera(f"{tails.pen_id}/{cam}")
        prior = np.log(fit.join_share / (1.0 - fit.join_share))
        odds[mine] = prior + fit.gap_place_ratio(gap_s[mine], distance[mine])
    chance = join_marginals(i, j, np.nan_to_num(odds, nan=-CUE_CLIP))
    out: dict[int, tuple[str, float]] = {}
    for end, start, p in zip(i.tolist(), j.tolist(), chance.tolist(), strict=True):
        animal_id = tails.animal_id[end]
        if p > 0.5 and animal_id is not None:
            out[start] = (animal_id, float(np.log(p / max(1.0 - p, 1e-12))))
    return out


def join_marginals(i: np.ndarray, j: np.ndarray, log_odds: np.ndarray) -> np.ndarray:
    """Return the chance (m,) of each candidate join (end i, start j) when every end joins at
    most one start and every start at most one end, each join weighted by its odds against
    none: the balanced scaling of the weights with a "none" slot per end and per start
    (Sinkhorn, the Bethe approximation of the matching's marginals)."""
    ends, end_at = np.unique(i, return_inverse=True)
    starts, start_at = np.unique(j, return_inverse=True)
    weight = np.exp(np.clip(log_odds, -LOG_ODDS_CLIP, LOG_ODDS_CLIP))
    u: np.ndarray = np.ones(len(ends))
    v: np.ndarray = np.ones(len(starts))
    for _ in range(MARGINAL_ROUNDS):
        u_next: np.ndarray = 1.0 / (1.0 + np.bincount(end_at, weight * v[start_at], len(ends)))
        v = 1.0 / (1.0 + np.bincount(start_at, weight * u_next[end_at], len(starts)))
        if np.allclose(u_next, u, rtol=1e-6, atol=1e-9):
            u = u_next
            break
        u = u_next
    return np.asarray(u[end_at] * v[start_at] * weight)


def _candidates(
    tail_camera: np.ndarray, end_s: np.ndarray, head_camera: np.ndarray, start_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return candidate (tail, head) pairs on one camera with the start within the window
    after the end, at most `MAX_CANDIDATES_PER_END` per tail (the nearest in time)."""
    pieces_i: list[np.ndarray] = []
    pieces_j: list[np.ndarray] = []
    for cam in sorted(set(tail_camera.tolist()) & set(head_camera.tolist())):
        ends = np.flatnonzero(tail_camera == cam)
        order = np.flatnonzero(head_camera == cam)
        order = order[np.argsort(start_s[order], kind="stable")]
        starts = start_s[order]
        lo = np.searchsorted(starts, end_s[ends], side="left")
        hi = np.searchsorted(starts, end_s[ends] + SEARCH_WINDOW_S, side="right")
        counts = np.minimum(hi - lo, MAX_CANDIDATES_PER_END)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        pieces_i.append(np.repeat(ends, counts))
        pieces_j.append(order[np.repeat(lo, counts) + offsets])
    if not pieces_i:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(pieces_i), np.concatenate(pieces_j)


@dataclass
class LookWeight:
    """How many nats a unit of look score is worth, learned from the handovers at midnight.

    Each likely handover names the animal a cluster should be (with the join's chance); the
    cluster's look either agrees (its score for that animal leads the rest) or not. The weight
    k makes the look's say on that animal against the best other, sigmoid(k * lead), as
    likely as possible given the handovers, each a noisy label right with its own chance. The
    look and the handover then add on one scale in the assignment: a barn where the look
    never disagrees with continuity gets a large k (the handover barely counts), one where
    the look is weak a small one."""

    leads: list[float] = field(default_factory=list)
    chances: list[float] = field(default_factory=list)
    learned_from: set[tuple[str, date]] = field(default_factory=set)

    def first_look(self, pen_id: str, day: date) -> bool:
        """Return whether this pen-day's handovers are still to be learned from (a pen-day is
        assigned several times; its handovers count once)."""
        if (pen_id, day) in self.learned_from:
            return False
        self.learned_from.add((pen_id, day))
        return True

    def add(self, lead: float, chance: float) -> None:
        """Add one handover: the named animal's score lead over the best other, its chance."""
        self.leads.append(lead)
        self.chances.append(chance)
        del self.leads[:-MAX_LEADS_KEPT], self.chances[:-MAX_LEADS_KEPT]

    def nats_per_score(self) -> float | None:
        """Return the fitted k, or None while there are too few handovers to fit it."""
        if len(self.leads) < MIN_HANDOVERS:
            return None
        lead = np.array(self.leads)
        chance = np.array(self.chances)

        def loss(k: float) -> float:
            agree = -np.logaddexp(0.0, -k * lead)  # log sigmoid(k lead)
            disagree = -np.logaddexp(0.0, k * lead)
            return -float(np.logaddexp(np.log(chance) + agree, np.log1p(-chance) + disagree).sum())

        fit = minimize_scalar(loss, bounds=K_BOUNDS, method="bounded")
        return float(fit.x)


def evidence_by_cluster(
    joins: dict[int, tuple[str, float]], label: np.ndarray
) -> dict[int, dict[str, float]]:
    """Return, per cluster, the summed handover log odds for each animal its tracks came from."""
    out: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row, (animal_id, odds) in joins.items():
        out[int(label[row])][animal_id] += odds
    return {c: dict(animals) for c, animals in out.items()}


def load_tails(record: Record, pen_days: set[tuple[str, date]]) -> dict[str, Tails]:
    """Return the stored tails of the given (pen, day)s, as linked now, keyed by pen.

    For a run that starts after days already linked: the day before its first day of each pen
    hands over from what the record holds."""
    if not pen_days:
        return {}
    columns = ["batch_id", "device_id", "track_id", "camera_id", "pen_id", "start", "end"]
    tracklets = record.read_visible("tracklets", columns)
    if tracklets.num_rows == 0:
        return {}
    day = pc.cast(pc.floor_temporal(tracklets.column("start"), unit="day"), pa.date32())
    end_s = np.asarray(tracklets.column("end").cast(pa.int64()).to_numpy(), np.float64) / 1e6
    pens = np.asarray(tracklets.column("pen_id").to_pylist(), dtype=object)
    days = np.asarray(day.to_numpy(zero_copy_only=False)).astype("datetime64[D]")
    wanted = np.zeros(tracklets.num_rows, dtype=bool)
    for pen_id, d in pen_days:
        wanted |= (
            (pens == pen_id)
            & (days == np.datetime64(d.isoformat(), "D"))
            & (end_s >= midnight_after(d) - SEARCH_WINDOW_S)
        )
    tails = tracklets.filter(pa.array(wanted))
    if tails.num_rows == 0:
        return {}
    _, last_xy = endpoints_of(record, tails)
    links = current_links(record)
    animal = {
        (d, t): a
        for d, t, a in zip(
            links.column("device_id").to_pylist(),
            links.column("track_id").to_pylist(),
            links.column("animal_id").to_pylist(),
            strict=True,
        )
    }
    keys = list(
        zip(
            tails.column("device_id").to_pylist(), tails.column("track_id").to_pylist(), strict=True
        )
    )
    camera = np.asarray(tails.column("camera_id").to_pylist(), dtype=object)
    tail_end = end_s[wanted]
    tail_pen = pens[wanted]
    tail_day = days[wanted]
    out: dict[str, Tails] = {}
    for pen_id, d in sorted(pen_days):
        rows = np.flatnonzero(
            (tail_pen == pen_id) & (tail_day == np.datetime64(d.isoformat(), "D"))
        )
        if len(rows):
            out[pen_id] = Tails(
                pen_id,
                d,
                camera[rows],
                tail_end[rows],
                last_xy[rows],
                [animal.get(keys[int(r)]) for r in rows],
            )
    return out
