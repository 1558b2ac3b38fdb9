"""Animals: the list (by pen, status, search), one animal, and an animal's timeline."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated

import pyarrow as pa
from fastapi import APIRouter, Query, Request, Response

from herdrecord.api.cache import VersionedCache, etag, table_versions
from herdrecord.api.deps import (
    CurrentRecord,
    CurrentSettings,
    CurrentWriter,
    ExistingAnimal,
    Reader,
    Vet,
)
from herdrecord.api.models import (
    Animal,
    AnimalIdentifier,
    AnimalIdentifierIn,
    AnimalIdentifiers,
    AnimalPage,
    Calibration,
    Event,
    LinkEntry,
    Timeline,
    Tracklet,
)
from herdrecord.api.problems import ApiError, responses
from herdrecord.events.identifiers import add_identifier, identifiers
from herdrecord.linking.audit import history
from herdrecord.lookup.animals import AnimalSummary, find_animals
from herdrecord.lookup.timeline import animal_timeline
from herdrecord.query.plainvalues import json_ready
from herdrecord.store.record import Record

router = APIRouter(tags=["animals"])
TIMELINE_TABLES = ("animals", "days", "events", "links")
_timelines: VersionedCache[bytes] = VersionedCache(512)  # the JSON, ready to send
Day = Annotated[date | None, Query(description="A UTC day, inclusive.")]


@router.get("/animals", summary="List animals", responses=responses())
def list_animals(
    principal: Reader,
    record: CurrentRecord,
    settings: CurrentSettings,
    pen_id: Annotated[str | None, Query(max_length=128, description="Only this pen.")] = None,
    status: Annotated[
        str | None,
        Query(pattern="^(active|departed|merged)$", description="active, departed or merged"),
    ] = None,
    q: Annotated[
        str | None, Query(max_length=128, description="Part of the id, name or ear tag.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AnimalPage:
    """Return animals sorted by id, with the days each was seen."""
    found = find_animals(record, pen_id, status, q)
    page = found[offset : offset + min(limit, settings.api_page_limit)]
    return AnimalPage(total=len(found), animals=[animal_model(a) for a in page])


@router.get("/animals/{animal_id}", summary="One animal", responses=responses(404))
def get_one_animal(principal: Reader, animal: ExistingAnimal) -> Animal:
    """Return one animal (merged animals too: `merged_into` names where it went)."""
    return animal_model(animal)


@router.get(
    "/animals/{animal_id}/identifiers",
    summary="An animal's identifiers (scheme and id, as ICAR ADE)",
    responses=responses(404),
)
def get_identifiers(
    principal: Reader, record: CurrentRecord, animal: ExistingAnimal
) -> AnimalIdentifiers:
    """Return the identifiers the animal carries, with the days each holds."""
    return AnimalIdentifiers(identifiers=_identifier_models(record, animal.animal_id))


@router.post(
    "/animals/{animal_id}/identifiers",
    summary="Record an identifier an animal carries",
    status_code=201,
    responses=responses(404, 422),
)
async def post_identifier(
    principal: Vet,
    record: CurrentRecord,
    writer: CurrentWriter,
    animal: ExistingAnimal,
    body: AnimalIdentifierIn,
) -> AnimalIdentifiers:
    """Record that the animal carries `scheme` `id` over the given days (refused, with
    nothing stored, when another animal carries it on any of them); a repeat stores
    nothing and says so (`added: false`)."""
    _, added = await writer.run(
        lambda: add_identifier(
            record,
            animal.animal_id,
            body.scheme,
            body.id,
            body.valid_from,
            body.valid_to,
            principal.name,
        )
    )
    return AnimalIdentifiers(identifiers=_identifier_models(record, animal.animal_id), added=added)


def _identifier_models(record: Record, animal_id: str) -> list[AnimalIdentifier]:
    return [
        AnimalIdentifier(
            animal_id=i.animal_id,
            scheme=i.scheme,
            id=i.id,
            valid_from=i.valid_from,
            valid_to=i.valid_to,
            recorded_by=i.recorded_by,
        )
        for i in identifiers(record, animal_id)
    ]


@router.get(
    "/animals/{animal_id}/timeline",
    summary="An animal's days, events and link history",
    response_model=Timeline,
    responses={
        304: {"description": "Unchanged since the ETag sent in If-None-Match."},
        **responses(404),
    },
)
def get_timeline(
    principal: Reader,
    animal: ExistingAnimal,
    record: CurrentRecord,
    request: Request,
    start: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC day.")] = None,
    links: Annotated[int, Query(ge=0, le=100_000, description="Most link decisions.")] = 200,
) -> Response:
    """Return the animal's days (one row per UTC day), events in force and link history.

    The answer carries an ETag; send it back in If-None-Match to get 304 while nothing it
    is made of has changed."""
    if animal.status == "merged":
        raise ApiError(
            404,
            f"{animal.animal_id} was merged into {animal.merged_into}; its timeline is under "
            "that id",
            "merged",
        )
    versions = table_versions(record, TIMELINE_TABLES)
    tag = etag(animal.animal_id, start, end, links, versions)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = _timelines.get_or_make(
        (record.uri, animal.animal_id, start, end, links, versions),
        lambda: _timeline(record, animal, start, end, links).model_dump_json().encode(),
    )
    return Response(body, media_type="application/json", headers=headers)


def animal_model(animal: AnimalSummary) -> Animal:
    """Return the response model of an animal."""
    return Animal(**asdict(animal))


def event_models(events: pa.Table) -> list[Event]:
    """Return the response models of event rows (the columns the model names)."""
    fields = set(Event.model_fields)
    return [Event(**{k: v for k, v in row.items() if k in fields}) for row in events.to_pylist()]


def _timeline(
    record: Record, animal: AnimalSummary, start: date | None, end: date | None, links: int
) -> Timeline:
    timeline = animal_timeline(record, animal.animal_id, start, end)
    calibration = timeline.calibration.calibration
    entries = list(reversed(history(record, animal.animal_id)))
    return Timeline(
        animal=animal_model(animal),
        start=start,
        end=end,
        behaviours=list(timeline.behaviours),
        calibration=Calibration(
            available=calibration is not None,
            weighings=timeline.calibration.weighings,
            needed=timeline.calibration.needed,
            slope=None if calibration is None else round(calibration.slope, 4),
            cv_error_kg=None if calibration is None else round(calibration.cv_mae_kg, 3),
        ),
        days=[json_ready(row) for row in timeline.days.to_pylist()],
        events=event_models(timeline.events),
        links=[
            LinkEntry(
                decided_at=e.decided_at,
                tracklet=Tracklet(device_id=e.tracklet.device_id, track_id=e.tracklet.track_id),
                animal_id=e.animal_id,
                method=e.method,
                decided_by=e.decided_by,
                score=e.score,
                current=e.current,
            )
            for e in entries[:links]
        ],
        links_total=len(entries),
    )
