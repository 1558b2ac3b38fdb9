"""One JSON shape for every error the service returns, and the handlers that make it.

Every invalid input is `422 invalid_input`, whether the framework found it (a missing field,
a wrong type) or herdrecord did (a parameter out of range); only an edge batch's refusal has
its own code, `batch_rejected`. Messages speak HTTP: the command-line hints the library's
errors end with (" — `herdrecord animals` lists them") become the endpoint that lists them.
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from herdrecord.contract.models import format_loc
from herdrecord.errors import (
    HerdrecordError,
    UnknownAnimal,
    UnknownEvent,
    UnknownKey,
    UnknownQuery,
)

log = logging.getLogger("herdrecord.api")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    """What went wrong, for a person and for a program."""

    status: int = Field(description="The HTTP status code, repeated.")
    code: str = Field(description="A stable machine-readable code, e.g. `batch_rejected`.")
    message: str = Field(description="One readable line.")
    problems: list[str] = Field(
        default_factory=list, description="Every problem found, by field, when there are some."
    )


class ErrorBody(BaseModel):
    """Every error response of the service has this shape."""

    error: ErrorDetail


class ApiError(Exception):
    """An error a route raises on purpose, with its status, code and problems."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        problems: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.problems = problems or []
        self.headers = headers


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Return the one error shape as a response."""
    body = ErrorBody(
        error=ErrorDetail(
            status=status,
            code=code or CODES.get(status, "error"),
            message=message,
            problems=problems or [],
        )
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI `responses` entries of the error statuses a route can give."""
    described = {
        400: "The request cannot be read.",
        401: "No API key, or one that is unknown or revoked.",
        403: "The key's role may not do this.",
        404: "No such animal, event, tracklet, query or keyframe.",
        409: "It conflicts with what the record holds.",
        413: "The body is larger than the service accepts.",
        415: "The body is not in a format this endpoint reads.",
        422: "The input is invalid; `problems` lists every problem.",
        429: "Too many requests of this kind run now; retry after `Retry-After` seconds.",
        503: "The record is busy (another writer) or the service is shutting down; retry.",
    }
    return {
        status: {"model": ErrorBody, "description": described[status]}
        for status in sorted({401, 403, 422, 503, *statuses})
    }


API_PATHS = ("/v1/", "/healthz", "/docs", "/redoc", "/openapi.json")
HIDDEN_PATH = "<server path>"
# Folders of the server an error must not name: temp files, the installation.
_SERVER_ROOTS = tuple(
    {tempfile.gettempdir(), sys.prefix, sys.base_prefix, str(Path(__file__).parents[2])}
)


def hide_server_paths(text: str, roots: Iterable[str] = ()) -> str:
    """Return `text` with every path under the record's folder (`roots`), the temp folder
    or the installation replaced by `<server path>`."""
    for root in sorted({*roots, *_SERVER_ROOTS} - {"", "/"}, key=len, reverse=True):
        text = re.sub(
            re.escape(root.rstrip("/")) + r"(?:/[^\s'\"`,;()]*|(?![\w.-]))", HIDDEN_PATH, text
        )
    return text


def _record_roots(request: Request) -> list[str]:
    record = getattr(request.app.state, "record", None)
    uri = str(getattr(record, "uri", "") or "")
    roots = [uri]
    if uri and "://" not in uri:
        roots.append(str(Path(uri).resolve()))
    return roots


PageError = Callable[[Request, int, str], Response]
# What lists the things an unknown id was looked up among, for an HTTP client.
_LISTED_BY: tuple[tuple[type[HerdrecordError], str], ...] = (
    (UnknownAnimal, "GET /v1/animals lists them"),
    (UnknownEvent, "GET /v1/events lists them"),
    (UnknownQuery, "GET /v1/queries describes them"),
    (UnknownKey, "GET /v1/keys lists them"),
)
_CLI_HINT = re.compile(r" — [^—]*`herdrecord [^`]*`[^—]*$")


def http_message(exc: HerdrecordError) -> str:
    """Return the error's first line for an HTTP client: a trailing hint to run a command
    becomes the endpoint that does the same, or goes."""
    message = _CLI_HINT.sub("", str(exc).splitlines()[0])
    hint = next((h for kind, h in _LISTED_BY if isinstance(exc, kind)), None)
    return message if hint is None else f"{message} — {hint}"


def install_handlers(app: FastAPI, page_error: PageError | None = None) -> None:
    """Make every error, ours or the framework's, answer in the one shape; on a page (any
    path outside the API's) answer with `page_error`'s HTML instead, when given."""

    def answer(
        request: Request,
        status: int,
        message: str,
        code: str | None = None,
        problems: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        roots = _record_roots(request)
        message = hide_server_paths(message, roots)
        problems = [hide_server_paths(p, roots) for p in problems or []]
        if page_error is not None and not request.url.path.startswith(API_PATHS):
            shown = message + "".join(f"; {p}" for p in (problems or [])[:5])
            return page_error(request, status, shown)
        return error_response(status, message, code, problems, headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return answer(request, exc.status, exc.message, exc.code, exc.problems, exc.headers)

    @app.exception_handler(HerdrecordError)
    async def _herdrecord_error(request: Request, exc: HerdrecordError) -> Response:
        status, code = exc.status, exc.code
        if status == 500:
            log.error(
                "unexpected %s on %s %s: %s",
                type(exc).__name__,
                request.method,
                request.url.path,
                exc,
            )
            return answer(request, 500, "internal error; the service log has the details")
        problems = [str(p) for p in getattr(exc, "problems", [])]
        message = http_message(exc)
        retry_after_s = getattr(exc, "retry_after_s", 5 if status == 503 else None)
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
        return answer(request, status, message, code, problems, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{format_loc(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        return answer(request, 422, "the request is invalid", "invalid_input", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return answer(request, exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return answer(request, 500, "internal error; the service log has the details")
