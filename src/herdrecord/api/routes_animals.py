"""Reading the record: animals, an animal's timeline, and its keyframes as JPEG."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query, Request, Response

from herdrecord.api.auth import READERS, allow
from herdrecord.api.cache import VersionedCache, etag, table_versions
from herdrecord.api.models import (
    Animal,
    AnimalPage,
    Calibration,
    Event,
    Keyframe,
    KeyframePage,
    LinkEntry,
    Timeline,
    Tracklet,
)
from herdrecord.api.problems import ApiError, responses
from herdrecord.cli_rows import json_ready
from herdrecord.contract import IDENTIFIER_PATTERN
from herdrecord.keys import Principal
from herdrecord.review import history
from herdrecord.store import Record
from herdrecord.timeline import read_days
from herdrecord.timelineview import animal_timeline

router = APIRouter(tags=["animals"])
Reader = Annotated[Principal, Depends(allow(*READERS))]
AnimalId = Annotated[str, Query(pattern=IDENTIFIER_PATTERN, max_length=128)]
STATUSES = ("active", "departed", "merged")


def _record(request: Request) -> Record:
    record: Record = request.app.state.record
    return record


@router.get("/animals", summary="List animals", responses=responses())
def list_animals(
    request: Request,
    principal: Reader,
    pen_id: Annotated[str | None, Query(max_length=128, description="Only this pen.")] = None,
    status: Annotated[
        str | None,
        Query(pattern="^(active|departed|merged)$", description="active, departed or merged"),
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=128, description="Search: part of the id, name or ear tag."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AnimalPage:
    """Return animals sorted by id, with the days each was seen."""
    record = _record(request)
    limit = min(limit, request.app.state.settings.api_page_limit)
    where, params = [], {}
    if pen_id is not None:
        where.append("a.pen_id = $pen")
        params["pen"] = pen_id
    if status is not None:
        where.append("a.status = $status")
        params["status"] = status
    if q is not None:
        where.append(
            "(contains(lower(a.animal_id), $q) OR contains(lower(coalesce(a.display_name, '')), "
            "$q) OR contains(lower(coalesce(a.tag_id, '')), $q))"
        )
        params["q"] = q.lower()
    rows = _animal_rows(record, " AND ".join(where) or "true", params)
    page = rows[offset : offset + limit]
    return AnimalPage(total=len(rows), animals=[Animal(**row) for row in page])


@router.get("/animals/{animal_id}", summary="One animal", responses=responses(404))
def get_animal(request: Request, principal: Reader, animal_id: str) -> Animal:
    """Return one animal (merged animals too: `merged_into` names where it went)."""
    return _animal(_record(request), animal_id)


TIMELINE_TABLES = ("animals", "days", "events", "links")
_timelines: VersionedCache[Timeline] = VersionedCache(512)


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
    request: Request,
    response: Response,
    principal: Reader,
    animal_id: str,
    start: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC day.")] = None,
    links: Annotated[int, Query(ge=0, le=100_000, description="Most link decisions.")] = 200,
) -> Timeline | Response:
    """Return the animal's days (one row per UTC day), events in force and link history.

    The answer carries an ETag; send it back in If-None-Match to get 304 while nothing it
    is made of has changed."""
    record = _record(request)
    versions = table_versions(record, TIMELINE_TABLES)
    tag = etag(animal_id, start, end, links, versions)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    timeline = _timelines.get_or_make(
        (record.uri, animal_id, start, end, links, versions),
        lambda: _timeline(record, animal_id, start, end, links),
    )
    response.headers.update(headers)
    return timeline


def _timeline(
    record: Record, animal_id: str, start: date | None, end: date | None, links: int
) -> Timeline:
    animal = _animal(record, animal_id)
    if animal.status == "merged":
        raise ApiError(
            404,
            f"{animal_id} was merged into {animal.merged_into}; its timeline is under that id",
            "merged",
        )
    timeline = animal_timeline(record, animal_id, start, end)
    calibration = timeline.calibration.calibration
    entries = list(reversed(history(record, animal_id)))
    return Timeline(
        animal=animal,
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
        events=[Event(**row) for row in _event_rows(timeline.events)],
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


@router.get(
    "/animals/{animal_id}/keyframes",
    summary="An animal's chosen keyframes by day",
    responses=responses(404),
)
def list_keyframes(
    request: Request,
    principal: Reader,
    animal_id: str,
    start: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC day.")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> KeyframePage:
    """Return the keyframes the animal's days chose (newest day first); fetch each `url`."""
    record = _record(request)
    _animal(record, animal_id)
    if start is not None and end is not None and start > end:
        raise ApiError(422, f"from {start} is after to {end}", "invalid_input")
    days = read_days(record, animal_id, start, end).select(["day", "keyframes"])
    found = []
    for row in reversed(days.to_pylist()):
        for ref in row["keyframes"]:
            t: datetime = ref["t"]
            query = urlencode(
                {"device_id": ref["device_id"], "track_id": ref["track_id"], "t": t.isoformat()}
            )
            found.append(
                Keyframe(
                    day=row["day"],
                    device_id=ref["device_id"],
                    track_id=ref["track_id"],
                    t=t,
                    url=f"/v1/keyframes/image?{query}",
                )
            )
    limit = min(limit, request.app.state.settings.api_page_limit)
    return KeyframePage(
        animal_id=animal_id, total=len(found), keyframes=found[offset : offset + limit]
    )


@router.get(
    "/keyframes/image",
    summary="One keyframe as JPEG",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The JPEG crop.",
        },
        **responses(404),
    },
)
def keyframe_image(
    request: Request,
    principal: Reader,
    device_id: AnimalId,
    track_id: AnimalId,
    t: Annotated[datetime, Query(description="Frame time, as the keyframe list gives it.")],
) -> Response:
    """Return the JPEG of one keyframe (it never changes: cache it)."""
    if t.tzinfo is None:
        raise ApiError(422, "t needs a time zone (e.g. 2026-11-21T06:01:05+00:00)", "invalid_input")
    record = _record(request)
    con = duckdb.connect()
    dataset = record.table("keyframes").to_lance()
    con.register("keyframes", dataset)
    rows = con.sql(
        "SELECT jpeg FROM keyframes WHERE device_id = $d AND track_id = $k AND t = $t LIMIT 1",
        params={"d": device_id, "k": track_id, "t": t.astimezone(UTC)},
    ).fetchall()
    if not rows:
        raise ApiError(404, f"no keyframe of {device_id}:{track_id} at {t.isoformat()}")
    return Response(
        content=rows[0][0],
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )


def _animal(record: Record, animal_id: str) -> Animal:
    if not re.match(IDENTIFIER_PATTERN, animal_id) or len(animal_id) > 128:
        raise ApiError(404, f"no animal {animal_id!r} in the record")
    where = f"animal_id = '{animal_id}'"  # an identifier holds no quote
    rows = record.table("animals").to_lance().to_table(filter=where).to_pylist()
    if not rows:
        raise ApiError(404, f"no animal {animal_id!r} in the record")
    seen = record.table("days").to_lance().to_table(columns=["day"], filter=where)
    days = seen.column("day")
    return Animal(
        **rows[0],
        first_day=pc.min(days).as_py(),
        last_day=pc.max(days).as_py(),
        days=seen.num_rows,
    )


def _animal_rows(record: Record, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    con = duckdb.connect()
    con.register("animals", record.table("animals").to_lance().to_table())
    con.register("days", record.table("days").to_lance().to_table(columns=["animal_id", "day"]))
    sql = f"""
        WITH seen AS (SELECT animal_id, min(day) AS first_day, max(day) AS last_day,
                             count(*) AS days FROM days GROUP BY animal_id)
        SELECT a.*, s.first_day, s.last_day, coalesce(s.days, 0)::INTEGER AS days
        FROM animals a LEFT JOIN seen s USING (animal_id)
        WHERE {where} ORDER BY a.animal_id
        """
    rows: list[dict[str, Any]] = con.sql(sql, params=params).to_arrow_table().to_pylist()
    return rows


def _event_rows(events: pa.Table) -> list[dict[str, Any]]:
    fields = set(Event.model_fields)
    return [{k: v for k, v in row.items() if k in fields} for row in events.to_pylist()]
