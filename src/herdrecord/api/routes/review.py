"""Review: the queue of unsure links, and the answers that settle them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from herdrecord.api.deps import CurrentRecord, CurrentWriter, Reader, Vet
from herdrecord.api.models import (
    ConfirmIn,
    MergeIn,
    NewAnimalIn,
    ReassignIn,
    ReviewItem,
    ReviewQueue,
    ReviewResult,
    SplitIn,
    Tracklet,
)
from herdrecord.api.problems import responses
from herdrecord.linking.review import (
    ReviewOutcome,
    TrackletRef,
    confirm,
    enrol_new,
    merge,
    reassign,
    split,
)
from herdrecord.lookup.review_queue import open_questions

router = APIRouter(tags=["review"])


@router.get("/review", summary="The review queue, most valuable first", responses=responses())
def get_review_queue(
    principal: Reader, record: CurrentRecord, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> ReviewQueue:
    """Return unsure links and long unknown tracklets, most tracked time at stake first, and
    how many are open in all (`total`; `limit` caps only `items`)."""
    page = open_questions(record, limit)
    return ReviewQueue(
        total=page.total,
        items=[
            ReviewItem(
                tracklet=_tracklet(item.tracklet),
                pen_id=item.pen_id,
                start=item.start,
                end=item.end,
                animal_id=item.animal_id,
                score=item.score,
                margin=item.margin,
                priority=item.priority,
                reason=item.reason,
            )
            for item in page.items
        ],
    )


@router.post("/review/confirm", summary="Confirm a tracklet's animal", responses=responses(404))
async def review_confirm(
    principal: Vet, record: CurrentRecord, writer: CurrentWriter, body: ConfirmIn
) -> ReviewResult:
    """The tracklet's current animal becomes a must-link that linking never overrides."""
    ref = _ref(body.tracklet)
    return _outcome(await writer.run(lambda: confirm(record, ref, principal.name)))


@router.post(
    "/review/reassign", summary="Link a tracklet to another animal", responses=responses(404)
)
async def review_reassign(
    principal: Vet, record: CurrentRecord, writer: CurrentWriter, body: ReassignIn
) -> ReviewResult:
    """Link the tracklet to `animal_id`, and never again to its current animal."""
    ref = _ref(body.tracklet)
    return _outcome(await writer.run(lambda: reassign(record, ref, body.animal_id, principal.name)))


@router.post("/review/new", summary="Enrol a new animal for tracklets", responses=responses(404))
async def review_new(
    principal: Vet, record: CurrentRecord, writer: CurrentWriter, body: NewAnimalIn
) -> ReviewResult:
    """Enrol a new animal and link the tracklets to it."""
    refs = [_ref(t) for t in body.tracklets]
    return _outcome(await writer.run(lambda: enrol_new(record, refs, principal.name, body.name)))


@router.post("/review/merge", summary="Merge two animals", responses=responses(404))
async def review_merge(
    principal: Vet, record: CurrentRecord, writer: CurrentWriter, body: MergeIn
) -> ReviewResult:
    """Merge `gone` into `keep`: one animal seen under two ids."""
    return _outcome(await writer.run(lambda: merge(record, body.keep, body.gone, principal.name)))


@router.post(
    "/review/split", summary="Split tracklets off to a new animal", responses=responses(404)
)
async def review_split(
    principal: Vet, record: CurrentRecord, writer: CurrentWriter, body: SplitIn
) -> ReviewResult:
    """Move the tracklets of `animal_id` to a new animal."""
    refs = [_ref(t) for t in body.tracklets]
    return _outcome(
        await writer.run(lambda: split(record, body.animal_id, refs, principal.name, body.name))
    )


def _ref(tracklet: Tracklet) -> TrackletRef:
    return TrackletRef(tracklet.device_id, tracklet.track_id)


def _tracklet(ref: TrackletRef) -> Tracklet:
    return Tracklet(device_id=ref.device_id, track_id=ref.track_id)


def _outcome(outcome: ReviewOutcome) -> ReviewResult:
    return ReviewResult(
        action=outcome.action,
        animals=list(outcome.animals),
        relinked_pen_days=outcome.relinked_pen_days,
        changed_links=outcome.changed_links,
    )
