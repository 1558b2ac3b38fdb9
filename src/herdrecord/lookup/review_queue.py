"""The review queue as people read it: a page of it with the queue's size, and what its
figures mean; `review list`, the API's /v1/review and the review page all say the same
(why each question is open is `ReviewItem.reason`, worded where the queue is made)."""

from __future__ import annotations

from dataclasses import dataclass

from herdrecord.linking.review import ReviewItem, review_queue
from herdrecord.store.record import Record

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
