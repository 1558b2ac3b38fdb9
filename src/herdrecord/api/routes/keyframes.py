"""Keyframes: the pictures an animal's days chose, listed by day and served as JPEG."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from herdrecord.api.deps import CurrentRecord, CurrentSettings, ExistingAnimal, Reader
from herdrecord.api.models import Keyframe, KeyframePage
from herdrecord.api.problems import ApiError, responses
from herdrecord.contract.models import IDENTIFIER_PATTERN
from herdrecord.lookup.pictures import animal_keyframes, keyframe_jpeg

router = APIRouter(tags=["keyframes"])
Identifier = Annotated[str, Query(pattern=IDENTIFIER_PATTERN, max_length=128)]


@router.get(
    "/animals/{animal_id}/keyframes",
    summary="An animal's chosen keyframes by day",
    responses=responses(404),
)
def list_keyframes(
    principal: Reader,
    animal: ExistingAnimal,
    record: CurrentRecord,
    settings: CurrentSettings,
    start: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last UTC day.")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> KeyframePage:
    """Return the keyframes the animal's days chose, newest day first; fetch each `url`."""
    if start is not None and end is not None and start > end:
        raise ApiError(422, f"from {start} is after to {end}", "invalid_input")
    refs = animal_keyframes(record, animal.animal_id, start, end)
    page = refs[offset : offset + min(limit, settings.api_page_limit)]
    return KeyframePage(
        animal_id=animal.animal_id,
        total=len(refs),
        keyframes=[
            Keyframe(
                day=ref.day,
                device_id=ref.device_id,
                track_id=ref.track_id,
                t=ref.t,
                url="/v1/keyframes/image?" + ref.query,
            )
            for ref in page
        ],
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
    principal: Reader,
    record: CurrentRecord,
    device_id: Identifier,
    track_id: Identifier,
    t: Annotated[datetime, Query(description="Frame time, as the keyframe list gives it.")],
) -> Response:
    """Return the JPEG of one keyframe (it never changes: cache it)."""
    if t.tzinfo is None:
        raise ApiError(422, "t needs a time zone (e.g. 2026-11-21T06:01:05+00:00)", "invalid_input")
    return Response(
        content=keyframe_jpeg(record, device_id, track_id, t),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )
