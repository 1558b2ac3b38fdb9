"""One router per resource, all under /v1."""

from fastapi import APIRouter

from herdrecord.api.routes import (
    animals,
    batches,
    events,
    export,
    keyframes,
    keys,
    queries,
    review,
    sql,
)

router = APIRouter(prefix="/v1")
for module in (batches, animals, keyframes, events, review, queries, sql, export, keys):
    router.include_router(module.router)

__all__ = ["router"]
