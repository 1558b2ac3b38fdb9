"""Events: health and production events in force, recorded all together or not at all."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from herdrecord.api.deps import CurrentRecord, CurrentSettings, CurrentWriter, Reader, Vet
from herdrecord.api.models import EventDuplicateOut, EventIds, EventPage, EventsIn, Retraction
from herdrecord.api.problems import ApiError, responses
from herdrecord.api.routes.animals import event_models
from herdrecord.contract.models import IDENTIFIER_PATTERN
from herdrecord.events.rules import EVENT_KINDS, EventInput, EventsRejected, parse_event
from herdrecord.events.store import add_labelled_events, current_events, retract_event
from herdrecord.events.window import utc_window

router = APIRouter(tags=["events"])
_REPEATS_ONLY: dict[int | str, dict[str, Any]] = {
    200: {"model": EventIds, "description": "Every event was a repeat; none stored."}
}


@router.get("/events", summary="Events in force", responses=responses(404))
def list_events(
    principal: Reader,
    record: CurrentRecord,
    settings: CurrentSettings,
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
    first, after = utc_window(start, end)
    rows = current_events(record, animal_id, start=first, end=after, kind=kind)
    page = rows.slice(offset, min(limit, settings.api_page_limit))
    return EventPage(total=rows.num_rows, events=event_models(page))


@router.post(
    "/events",
    summary="Record events",
    status_code=201,
    responses={**_REPEATS_ONLY, **responses(404)},
)
async def add_events(
    principal: Vet,
    record: CurrentRecord,
    writer: CurrentWriter,
    body: EventsIn,
    response: Response,
) -> EventIds:
    """Store the events all together or none (422 lists every problem by event); the author
    is the key's name unless an event names one. An event sent again (its `event_key`, or
    else the same animal, kind, time and values) is listed in `duplicates`, not stored: a
    retried request is safe. 201 when something was stored, 200 when all were repeats."""
    raw = [
        {**e.model_dump(exclude_none=True), "author": e.author or principal.name}
        for e in body.events
    ]
    labelled, problems = _parse(raw)
    recorded = await writer.run(lambda: add_labelled_events(record, labelled, problems))
    if not recorded.event_ids:
        response.status_code = 200
    return EventIds(
        event_ids=list(recorded.event_ids),
        duplicates=[
            EventDuplicateOut(
                index=d.position,
                event_id=d.event_id,
                by="event_key" if d.by_key else "content",
                withdrawn=d.withdrawn,
            )
            for d in recorded.duplicates
        ],
    )


@router.post(
    "/events/{event_id}/retract",
    summary="Withdraw an event recorded in error",
    status_code=201,
    responses=responses(404, 409),
)
async def retract(
    principal: Vet, record: CurrentRecord, writer: CurrentWriter, event_id: str, body: Retraction
) -> EventIds:
    """Withdraw an event in force; the retraction is itself an event row (the audit trail)."""
    new_id = await writer.run(lambda: retract_event(record, event_id, principal.name, body.reason))
    return EventIds(event_ids=[new_id])


def _parse(
    raw: list[dict[str, object]],
) -> tuple[list[tuple[int, str, EventInput]], list[tuple[int, str]]]:
    """Return (position, label, event) of the events that parse, and the others' problems."""
    labelled: list[tuple[int, str, EventInput]] = []
    problems: list[tuple[int, str]] = []
    for i, data in enumerate(raw):
        label = "" if len(raw) == 1 else f"events[{i}]: "
        try:
            labelled.append((i, label, parse_event(data)))
        except EventsRejected as exc:
            problems.extend((i, label + problem) for problem in exc.problems)
    return labelled, problems
