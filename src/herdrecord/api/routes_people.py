"""What people do: record events, answer review items, and (admins) manage API keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from herdrecord.api.auth import ADMINS, READERS, VETS, allow
from herdrecord.api.models import (
    ConfirmIn,
    Event,
    EventIds,
    EventPage,
    EventsIn,
    KeyIn,
    KeyInfo,
    KeyList,
    MergeIn,
    NewAnimalIn,
    NewKey,
    ReassignIn,
    Retraction,
    ReviewItem,
    ReviewQueue,
    ReviewResult,
    SplitIn,
    Tracklet,
)
from herdrecord.api.problems import ApiError, responses
from herdrecord.api.routes_animals import _event_rows, _record
from herdrecord.api.writer import Writer
from herdrecord.contract import IDENTIFIER_PATTERN
from herdrecord.eventrules import EVENT_KINDS, EventInput, EventsRejected, parse_event
from herdrecord.events import add_labelled_events, current_events, retract_event
from herdrecord.keys import ApiKey, Principal, add_key, list_keys, revoke_key
from herdrecord.review import (
    ReviewOutcome,
    TrackletRef,
    confirm,
    enrol_new,
    merge,
    reassign,
    review_queue,
    split,
)

events = APIRouter(tags=["events"])
review = APIRouter(tags=["review"])
keys = APIRouter(tags=["keys"])
Reader = Annotated[Principal, Depends(allow(*READERS))]
Vet = Annotated[Principal, Depends(allow(*VETS))]
Admin = Annotated[Principal, Depends(allow(*ADMINS))]


def _writer(request: Request) -> Writer:
    writer: Writer = request.app.state.writer
    return writer


@events.get("/events", summary="Events in force", responses=responses(404))
def list_events(
    request: Request,
    principal: Reader,
    animal_id: Annotated[
        str | None, Query(pattern=IDENTIFIER_PATTERN, max_length=128, description="One animal.")
    ] = None,
    kind: Annotated[str | None, Query(pattern="^(" + "|".join(EVENT_KINDS) + ")$")] = None,
    start: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC day.")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EventPage:
    """Return the events in force (corrections applied, retractions removed), oldest first."""
    if start is not None and end is not None and start > end:
        raise ApiError(422, f"from {start} is after to {end}", "invalid_input")
    rows = current_events(
        _record(request),
        animal_id,
        start=None if start is None else datetime.combine(start, time(), UTC),
        end=None if end is None else datetime.combine(end + timedelta(days=1), time(), UTC),
        kind=kind,
    )
    limit = min(limit, request.app.state.settings.api_page_limit)
    page = rows.slice(offset, limit)
    return EventPage(total=rows.num_rows, events=[Event(**r) for r in _event_rows(page)])


@events.post("/events", summary="Record events", status_code=201, responses=responses(404))
async def add_events(request: Request, principal: Vet, body: EventsIn) -> EventIds:
    """Store the events all together or none (422 lists every problem by event)."""
    raw = [
        {**e.model_dump(exclude_none=True), "author": e.author or principal.name}
        for e in body.events
    ]
    labelled, problems = _parse(raw)
    record = _record(request)
    ids = await _writer(request).run(lambda: add_labelled_events(record, labelled, problems))
    return EventIds(event_ids=ids)


@events.post(
    "/events/{event_id}/retract",
    summary="Withdraw an event recorded in error",
    status_code=201,
    responses=responses(404, 409),
)
async def retract(request: Request, principal: Vet, event_id: str, body: Retraction) -> EventIds:
    """Withdraw an event in force; the retraction is itself an event row (the audit trail)."""
    record = _record(request)
    new_id = await _writer(request).run(
        lambda: retract_event(record, event_id, principal.name, body.reason)
    )
    return EventIds(event_ids=[new_id])


def _parse(
    raw: list[dict[str, object]],
) -> tuple[list[tuple[int, str, EventInput]], list[tuple[int, str]]]:
    labelled: list[tuple[int, str, EventInput]] = []
    problems: list[tuple[int, str]] = []
    for i, data in enumerate(raw):
        label = "" if len(raw) == 1 else f"events[{i}]: "
        try:
            labelled.append((i, label, parse_event(data)))
        except EventsRejected as exc:
            problems.extend((i, label + problem) for problem in exc.problems)
    return labelled, problems


@review.get("/review", summary="The review queue, most valuable first", responses=responses())
def get_review_queue(
    request: Request, principal: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> ReviewQueue:
    """Return unsure links and long unknown tracklets, most tracked time at stake first."""
    items = review_queue(_record(request), limit)
    return ReviewQueue(
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
            for item in items
        ]
    )


@review.post("/review/confirm", summary="Confirm a tracklet's animal", responses=responses(404))
async def review_confirm(request: Request, principal: Vet, body: ConfirmIn) -> ReviewResult:
    """The tracklet's current animal becomes a must-link that linking never overrides."""
    record = _record(request)
    ref = _ref(body.tracklet)
    return _outcome(await _writer(request).run(lambda: confirm(record, ref, principal.name)))


@review.post(
    "/review/reassign", summary="Link a tracklet to another animal", responses=responses(404)
)
async def review_reassign(request: Request, principal: Vet, body: ReassignIn) -> ReviewResult:
    """Link the tracklet to `animal_id`, and never again to its current animal."""
    record = _record(request)
    ref = _ref(body.tracklet)
    return _outcome(
        await _writer(request).run(lambda: reassign(record, ref, body.animal_id, principal.name))
    )


@review.post("/review/new", summary="Enrol a new animal for tracklets", responses=responses(404))
async def review_new(request: Request, principal: Vet, body: NewAnimalIn) -> ReviewResult:
    """Enrol a new animal and link the tracklets to it."""
    record = _record(request)
    refs = [_ref(t) for t in body.tracklets]
    return _outcome(
        await _writer(request).run(lambda: enrol_new(record, refs, principal.name, body.name))
    )


@review.post("/review/merge", summary="Merge two animals", responses=responses(404))
async def review_merge(request: Request, principal: Vet, body: MergeIn) -> ReviewResult:
    """Merge `gone` into `keep`: one animal seen under two ids."""
    record = _record(request)
    return _outcome(
        await _writer(request).run(lambda: merge(record, body.keep, body.gone, principal.name))
    )


@review.post(
    "/review/split", summary="Split tracklets off to a new animal", responses=responses(404)
)
async def review_split(request: Request, principal: Vet, body: SplitIn) -> ReviewResult:
    """Move the tracklets of `animal_id` to a new animal."""
    record = _record(request)
    refs = [_ref(t) for t in body.tracklets]
    return _outcome(
        await _writer(request).run(
            lambda: split(record, body.animal_id, refs, principal.name, body.name)
        )
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


@keys.get("/keys", summary="Every API key (never the keys themselves)", responses=responses())
def get_keys(request: Request, principal: Admin) -> KeyList:
    """Return every key ever made, active ones first."""
    return KeyList(keys=[_info(key) for key in list_keys(_record(request))])


@keys.post(
    "/keys", summary="Make a key for a new principal", status_code=201, responses=responses()
)
async def post_key(request: Request, principal: Admin, body: KeyIn) -> NewKey:
    """Return the new key; it is shown this once and stored only as a hash."""
    record = _record(request)
    key, text = await _writer(request).run(
        lambda: add_key(record, body.name, body.role, principal.name)
    )
    return NewKey(**_info(key).model_dump(), key=text)


@keys.delete("/keys/{name}", summary="Revoke a principal's key", responses=responses(404))
async def delete_key(request: Request, principal: Admin, name: str) -> KeyInfo:
    """Revoke the key; requests with it fail from the service's next key refresh (≤ 1 s)."""
    record = _record(request)
    if name not in {k.name for k in list_keys(record) if k.active}:
        raise ApiError(404, f"{name} has no active key")
    return _info(await _writer(request).run(lambda: revoke_key(record, name)))


def _info(key: ApiKey) -> KeyInfo:
    return KeyInfo(
        name=key.name,
        role=key.role,
        key_id=key.key_id,
        created_at=key.created_at,
        created_by=key.created_by,
        revoked_at=key.revoked_at,
    )


router = APIRouter()
router.include_router(events)
router.include_router(review)
router.include_router(keys)
