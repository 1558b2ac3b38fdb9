"""The HTTP service: `create_app(settings)` builds it; `herdrecord serve` runs it in uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from herdrecord._version import __version__
from herdrecord.api.deps import authenticate
from herdrecord.api.docs_page import PAGE_HEADERS as DOCS_HEADERS
from herdrecord.api.docs_page import docs_page
from herdrecord.api.drain import DrainUnreadBody
from herdrecord.api.keys import KeyRing
from herdrecord.api.models import Health
from herdrecord.api.problems import ApiError, ErrorBody, install_handlers
from herdrecord.api.routes import router
from herdrecord.api.writer import Writer
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.ingest.journal import Journal, open_journal
from herdrecord.ingest.replay import replay_journal
from herdrecord.query.sandbox import Sandbox
from herdrecord.store.record import Record, open_record
from herdrecord.web.pages import error_page, install_pages
from herdrecord.web.session import Sessions

log = logging.getLogger("herdrecord.api")

DESCRIPTION = """\
The record of every animal in a herd, over HTTP. Send an API key made with
`herdrecord keys add PATH NAME --role ROLE` as `Authorization: Bearer hr_...`.

Roles: **edge** uploads batches; **vet** reads, runs named queries, records events and
answers review items; **analyst** reads, runs named queries and free SQL, and exports;
**admin** does everything and manages keys. Every error has the shape `{"error": {"status",
"code", "message", "problems"}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the service for the record named by `settings.record`."""

    settings = settings or Settings()
    if not settings.record:
        raise InvalidInput("no record to serve: give its path (HERDRECORD_RECORD)")
    uri = settings.record

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        record = open_record(uri, settings)
        journal = open_journal(record)
        if journal is not None:
            await asyncio.to_thread(_replay, record, journal)
        app.state.record = record
        app.state.settings = settings
        app.state.keys = KeyRing(record, settings.api_key_cache_s)
        app.state.sessions = Sessions(app.state.keys, settings.ui_session_hours * 3600)
        writer = Writer(record, journal)
        app.state.writer = writer
        app.state.sandbox = Sandbox(settings, warm=settings.sql_warm_processes)
        writer.start()
        try:
            yield
        finally:
            app.state.sandbox.close()
            await writer.close()
            if journal is not None:
                journal.close()

    app = FastAPI(
        title="herdrecord",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={500: {"model": ErrorBody, "description": "A fault of the service."}},
        # FastAPI's own /docs and /redoc load their scripts from a CDN: /docs is drawn here.
        docs_url=None,
        redoc_url=None,
    )
    install_handlers(app, error_page)
    app.add_middleware(
        DrainUnreadBody,
        max_body_bytes=settings.api_max_body_bytes,
        drain_s=settings.api_refusal_drain_s,
        max_small_body_bytes=settings.api_max_small_body_bytes,
        body_timeout_s=settings.api_body_timeout_s,
    )

    @app.get(
        "/healthz",
        tags=["service"],
        summary="Is the service up (no key needed; a key of any role sees more)",
        response_model=Health,
        response_model_exclude_unset=True,
    )
    def healthz(request: Request) -> Health:
        """Answer `{"status": "ok"}`; with a valid key, also the record, its schema and the
        writer's counts (a stranger learns nothing of the server)."""
        try:
            authenticate(request.app.state.keys, request.headers.get("authorization", ""))
        except ApiError:
            return Health(status="ok")
        record = request.app.state.record
        writer: Writer = request.app.state.writer
        return Health(
            status="ok",
            record=record.uri,
            farm_id=record.farm_id,
            schema_version=record.schema_version,
            queued_writes=writer.stats.queued,
            unlinked=writer.stats.unlinked_since is not None,
            uploads=writer.stats.uploads,
            commits=writer.stats.commits,
            links=writer.stats.links,
            last_link_error=writer.stats.last_link_error,
        )

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """Answer the API's reference page, which loads nothing from outside the service."""
        return HTMLResponse(docs_page(request.app.openapi()), headers=DOCS_HEADERS)

    app.include_router(router)
    install_pages(app)
    return app


def _replay(record: Record, journal: Journal) -> None:
    """Replay the uploads an earlier run journalled but may not have made durable; sync."""
    report = replay_journal(record, journal)
    if report.entries:
        log.warning(
            "replayed %d journalled uploads: %d batches stored again, %d already stored, "
            "%d rejected",
            report.entries,
            report.count("accepted"),
            report.count("duplicate"),
            report.count("rejected"),
        )
    journal.make_durable()
