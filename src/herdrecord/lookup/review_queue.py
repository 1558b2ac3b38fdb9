"""The review queue: the open questions (unsure links and long unknowns), most tracked time
at stake first; and as people read it, a page of it with the queue's size, and what its
figures mean; `review list`, the API's /v1/review and the review page all say the same
(why each question is open is `ReviewItem.reason`, worded where the queue is made)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from herdrecord.linking.audit import TrackletRef
from herdrecord.store.linktable import connect_links
from herdrecord.store.record import Record

REVIEW_CONFIDENCE = 0.9  # links less likely than this to be right are worth a look
REVIEW_MARGIN = 0.05  # for links without a confidence (before schema 4): a close runner-up
MIN_UNKNOWN_S = 300.0  # unknown tracklets shorter than this are not worth a person's time
# A margin shown with three decimals reads 0.000 below this: a tie for a person.
TIED_BELOW = 0.0005


@dataclass(frozen=True)
class ReviewItem:
    """One link worth a person's look, with why."""

    tracklet: TrackletRef
    pen_id: str
    start: datetime
    end: datetime
    animal_id: str | None
    score: float | None
    margin: float | None
    priority: float  # tracked seconds at stake, scaled by how unsure the link is
    reason: str


def margin_reason(margin: float) -> str:
    """Return why a link without a confidence is a close call, in a reader's words: a tie,
    this animal's lead, or the runner-up's."""
    if abs(margin) < TIED_BELOW:
        return "close call: tied with the runner-up (margin under 0.001)"
    if margin < 0:
        return f"close call: the runner-up looks {-margin:.3f} more alike (margin {margin:.3f})"
    return f"close call: only {margin:.3f} ahead of the runner-up (margin {margin:.3f})"


def review_queue(record: Record, limit: int | None = 50) -> list[ReviewItem]:
    """Return the most valuable open questions first: unsure links and long unknowns
    (`limit` None: every open question)."""
    con = connect_links(record)
    rows = con.sql(
        f"""
        SELECT l.device_id, l.track_id, t.pen_id, t.start, t."end", l.animal_id, l.score,
               l.margin, l.confidence, epoch(t."end") - epoch(t.start) + 1 AS seconds
        FROM current l JOIN tracklets t USING (device_id, track_id)
        WHERE l.method = 'auto' AND (
              (l.animal_id IS NULL AND epoch(t."end") - epoch(t.start) >= {MIN_UNKNOWN_S})
           OR (l.animal_id IS NOT NULL AND l.confidence < {REVIEW_CONFIDENCE})
           OR (l.animal_id IS NOT NULL AND l.confidence IS NULL
               AND coalesce(l.margin, 0) < {REVIEW_MARGIN}))
        """
    ).fetchall()
    items = []
    for device_id, track_id, pen_id, start, end, animal_id, score, margin, p, seconds in rows:
        if animal_id is None:
            priority, reason = float(seconds), "unknown animal"
        elif p is not None:
            priority, reason = float(seconds) * (1.0 - p), f"close call (confidence {p:.2f})"
        else:
            doubt = 1.0 - max(0.0, float(margin or 0.0)) / REVIEW_MARGIN
            priority, reason = float(seconds) * doubt, margin_reason(float(margin or 0.0))
        items.append(
            ReviewItem(
                TrackletRef(device_id, track_id),
                pen_id,
                start,
                end,
                animal_id,
                score,
                margin,
                priority,
                reason,
            )
        )
    items.sort(key=lambda item: -item.priority)
    return items[:limit]


MARGIN_MEANING = (
    "Margin (for a link without a confidence, such as one to an animal enrolled that day): "
    "the linked animal's score minus the best other animal's, both scored on the chain of "
    "tracklets this one was stitched into that day. A margin near 0 is a tie: the two look "
    "as alike. A negative margin means another animal looks more alike, yet the pen-day's "
    "assignment, which weighs the whole day (each animal on at most one chain at a time, the "
    "best total over the day), chose this one."
)

AT_STAKE_MEANING = (
    "Minutes at stake: the tracklet's minutes times how unsure its link is (1 - confidence; "
    "all of them for an unknown animal)."
)


@dataclass(frozen=True)
class QueuePage:
    """The first open questions of the review queue and how many are open in all."""

    items: tuple[ReviewItem, ...]  # the most tracked minutes at stake first
    total: int  # open questions, shown or not


def open_questions(record: Record, limit: int | None) -> QueuePage:
    """Return the review queue's first `limit` questions (None: all) and its size."""
    every = review_queue(record, None)
    return QueuePage(tuple(every if limit is None else every[:limit]), len(every))
