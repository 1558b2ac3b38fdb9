"""The pages vets open: sign-in, the herd, an animal, cohorts and the review queue.

Server-rendered (Jinja2) with a little local JavaScript; charts are inline SVG. Reads run in
the thread pool like the API's; every write (an event, a review answer) goes through the
service's one writer, and every form carries the session's CSRF token.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import pyarrow.compute as pc
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from herdrecord.api.deps import current_record, current_settings, current_writer
from herdrecord.api.keys import Role
from herdrecord.api.models import Rows
from herdrecord.api.rows import render_rows
from herdrecord.api.writer import Writer
from herdrecord.config import Settings
from herdrecord.errors import HerdrecordError, InvalidInput, UnknownAnimal, UnknownKeyframe
from herdrecord.events.rules import EVENT_KINDS, EventsRejected, parse_event
from herdrecord.events.store import add_events, current_events
from herdrecord.linking.audit import history
from herdrecord.linking.review import (
    ReviewOutcome,
    TrackletRef,
    candidates,
    confirm,
    enrol_new,
    linked_animal,
    reassign,
    same_animal,
    split,
)
from herdrecord.lookup.animals import (
    AnimalSummary,
    confirms_identity,
    get_animal,
    identity_confirmation,
)
from herdrecord.lookup.herd import herd_overview
from herdrecord.lookup.pictures import (
    KeyframeRef,
    animal_keyframes,
    keyframe_jpeg,
    tracklet_keyframes,
)
from herdrecord.lookup.review_queue import AT_STAKE_MEANING, MARGIN_MEANING, open_questions
from herdrecord.lookup.timeline import animal_timeline
from herdrecord.query.cohorts import NamedQuery, get_query, list_queries, run_query
from herdrecord.store.record import Record
from herdrecord.web.charts import (
    BEHAVIOUR_COLOURS,
    EVENT_COLOURS,
    OTHER_COLOUR,
    budget_chart,
    event_label,
    growth_chart,
)
from herdrecord.web.session import COOKIE, NotForPages, Session, Sessions

DEFAULT_DAYS = 90  # the animal page opens on its last 90 days
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)  # dates a period may name
STRIP_DAYS = 60  # most days in the keyframe strip; longer periods show every k-th day
SHOWN_ROWS = 500  # cohort rows shown in the page; downloads carry all
HISTORY_SHOWN = 100
QUEUE_SHOWN = 50
ANIMAL_COLUMNS = ("animal_id", "case_id")  # cohort columns that name an animal: linked
VETS: tuple[Role, ...] = ("vet", "admin")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
PAGE_HEADERS = {
    # Style attributes carry chart and chip colours; no inline script anywhere.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages hold health records: not kept on shared PCs
}

templates = Jinja2Templates(directory=str(resources.files("herdrecord.web") / "templates"))
router = APIRouter(include_in_schema=False)


class SignInNeeded(Exception):
    """The page needs a signed-in person; they are sent to sign in, then back."""

    def __init__(self, back_to: str) -> None:
        self.back_to = back_to


class PageRefused(Exception):
    """The page or action is not for the signed-in person's role."""


def install_pages(app: FastAPI) -> None:
    """Serve the pages and their local assets from the app."""
    static = resources.files("herdrecord.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse("/sign-in?" + urlencode({"next": exc.back_to}), status_code=303)

    @app.exception_handler(PageRefused)
    async def _refused(request: Request, exc: PageRefused) -> Response:
        return error_page(request, 403, str(exc))


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """Return a rendered page with the headers every page carries: the browser may load
    only this service's own scripts, styles, pictures and forms, and no site may frame it."""
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """Return the page that says what went wrong, in one line."""
    sessions: Sessions = request.app.state.sessions
    session = sessions.get(request.cookies.get(COOKIE))
    context: dict[str, Any] = {
        "session": session,
        "status": status,
        "message": message,
        "notes": [],
    }
    return render(request, "error.html", context, status)


def signed_in(request: Request) -> Session:
    """Return the signed-in person's session, or send them to sign in."""
    sessions: Sessions = request.app.state.sessions
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(back if request.method == "GET" else "/herd")
    return session


Person = Annotated[Session, Depends(signed_in)]
PageRecord = Annotated[Record, Depends(current_record)]
PageSettings = Annotated[Settings, Depends(current_settings)]
PageWriter = Annotated[Writer, Depends(current_writer)]
Csrf = Annotated[str, Form(max_length=100)]


def _page(request: Request, session: Session | None, name: str, **context: Any) -> HTMLResponse:
    notes = session.take_notes() if session else []
    return render(request, name, {"session": session, "notes": notes, **context})


def _check_form(session: Session, csrf: str, *roles: Role) -> None:
    if not session.csrf_ok(csrf):
        raise PageRefused("the form is stale or came from another site; reload the page")
    if roles and not session.may(*roles):
        raise PageRefused(
            f"{session.name} has role {session.role}; this needs {' or '.join(roles)}"
        )


def _back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    """Return a local path to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/herd"
    return target


# -- sign-in -----------------------------------------------------------------------------


@router.get("/")
def home() -> RedirectResponse:
    return _back("/herd")


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _page(request, None, "sign_in.html", next=_safe_next(next), problem=None)


@router.post("/sign-in")
def sign_in(
    request: Request,
    settings: PageSettings,
    key: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/herd",
) -> Response:
    target = _safe_next(next)
    if not _same_site(request):
        return _refuse_sign_in(request, target, "sign-in must come from this service's page", 403)
    secure = request.url.scheme == "https"
    local = request.client is not None and request.client.host in _LOOPBACK
    if not secure and not local and not settings.ui_allow_http:
        return _refuse_sign_in(
            request,
            target,
            "sign-in over plain HTTP from another machine would send your key readable: use "
            "HTTPS (or set HERDRECORD_UI_ALLOW_HTTP=true on a trusted farm network)",
            400,
        )
    sessions: Sessions = request.app.state.sessions
    try:
        session = sessions.sign_in(key)
    except NotForPages as exc:
        return _refuse_sign_in(
            request, target, f"a key of role {exc} is for edge devices, not the pages", 403
        )
    if session is None:
        return _refuse_sign_in(request, target, "that key is unknown or revoked", 401)
    response = _back(target)
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(settings.ui_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=secure or local,  # browsers keep Secure cookies of http://localhost too
        path="/",
    )
    return response


def _same_site(request: Request) -> bool:
    """Whether a form post came from this service's own page (no other site may sign a
    person in under its own key): the browser's Sec-Fetch-Site, else Origin, says so."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _refuse_sign_in(request: Request, target: str, problem: str, status: int) -> HTMLResponse:
    context: dict[str, Any] = {"session": None, "notes": [], "next": target, "problem": problem}
    return render(request, "sign_in.html", context, status)


@router.post("/sign-out")
def sign_out(request: Request, session: Person, csrf: Csrf) -> Response:
    _check_form(session, csrf)
    sessions: Sessions = request.app.state.sessions
    sessions.sign_out(session.token)
    response = _back("/sign-in")
    response.delete_cookie(COOKIE, path="/")
    return response


# -- pictures ------------------------------------------------------------------------------


def frame_url(ref: KeyframeRef) -> str:
    """Return the page URL of one keyframe's JPEG."""
    return "/frames?" + ref.query


@router.get("/frames")
def frame(
    session: Person,
    record: PageRecord,
    device_id: Annotated[str, Query(max_length=128)],
    track_id: Annotated[str, Query(max_length=128)],
    t: datetime,
) -> Response:
    try:
        jpeg = keyframe_jpeg(record, device_id, track_id, t)
    except UnknownKeyframe:
        return Response(status_code=404)
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


# -- herd ----------------------------------------------------------------------------------


@router.get("/herd")
def herd_page(
    request: Request,
    session: Person,
    record: PageRecord,
    q: Annotated[str | None, Query(max_length=128)] = None,
    pen: Annotated[str | None, Query(max_length=128)] = None,
    departed: bool = False,
) -> Response:
    today = datetime.now(UTC).date()
    herd = herd_overview(record, q or None, pen or None, departed, today=today)
    if q and herd.animals == 1:
        only = herd.pens[0].animals[0].animal
        return _back(f"/animals/{quote(only.animal_id)}")
    return _page(
        request,
        session,
        "herd.html",
        herd=herd,
        q=q or "",
        pen=pen or "",
        departed=departed,
        event_colours=EVENT_COLOURS,
        lameness_attention={
            "0-3": record.settings.lameness_attention_0_3,
            "1-5": record.settings.lameness_attention_1_5,
        },
        today=today,
        stale_days=0
        if herd.as_of is None or (today - herd.as_of).days <= 1
        else (today - herd.as_of).days,
    )


# -- animal --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripDay:
    """One day of the keyframe strip."""

    day: date
    frames: list[str]  # URLs
    flagged: bool


@router.get("/animals/{animal_id}")
def animal_page(
    request: Request,
    session: Person,
    record: PageRecord,
    animal_id: str,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> Response:
    try:
        animal = get_animal(record, animal_id)
    except UnknownAnimal:
        return error_page(request, 404, f"no animal {animal_id} in the record")
    if animal.status == "merged":
        session.note(f"{animal_id} was merged into {animal.merged_into}; showing that animal")
        return _back(f"/animals/{quote(str(animal.merged_into))}")
    for given in (start, end):
        if given is not None and not EARLIEST <= given <= LATEST:
            return error_page(request, 422, f"{given} is out of range: give {EARLIEST} to {LATEST}")
    last = _last_day(animal, _latest_event_day(record, animal_id))
    start, end = _period(last, animal.first_day, start, end)
    if start > end:
        return error_page(request, 422, f"the period starts on {start} after it ends on {end}")
    timeline = animal_timeline(record, animal_id, start, end)
    rows = timeline.days.select(
        [
            "day",
            "pen_id",
            "observed_min",
            "behaviour_min",
            "lying_share",
            "activity_index",
            "gait_mean",
            "link_confidence",
            "anomalies",
            "anomaly_z",
            "keyframes",
            "weight_est_kg",
            "scale_weight_kg",
        ]
    ).to_pylist()
    events = timeline.events.to_pylist()
    entries = list(reversed(history(record, animal_id)))
    strip, every = _strip(rows)
    behaviours = list(timeline.behaviours)
    floor_h = record.settings.day_coverage_floor_h
    return _page(
        request,
        session,
        "animal.html",
        animal=animal,
        start=start,
        end=end,
        presets=_presets(animal.first_day, last),
        rows=rows,
        strip=strip,
        strip_every=every,
        growth=growth_chart(rows, events, start, end, coverage_floor_h=floor_h),
        budget=budget_chart(rows, behaviours, events, start, end, coverage_floor_h=floor_h),
        coverage_floor_h=floor_h,
        legend=[(b, BEHAVIOUR_COLOURS.get(b, OTHER_COLOUR)) for b in behaviours],
        event_colours=EVENT_COLOURS,
        flagged=[r for r in reversed(rows) if r["anomalies"]],
        events=[{**e, "label": event_label(e)} for e in reversed(events)],
        history=_shown_history(entries, animal),
        confirmation=identity_confirmation(animal),
        history_total=len(entries),
        calibration=timeline.calibration,
        kinds=EVENT_KINDS,
        may_write=session.may(*VETS),
    )


def _period(
    last: date, first: date | None, start: date | None, end: date | None
) -> tuple[date, date]:
    """Return the period asked for; by default the DEFAULT_DAYS up to `last` (a start
    alone runs to `last`, or DEFAULT_DAYS on when it is later)."""
    if end is None:
        end = last if start is None or start <= last else start + timedelta(DEFAULT_DAYS - 1)
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
        if first is not None and first <= end:
            start = max(start, first)
    return start, end


def _last_day(animal: AnimalSummary, latest_event: date | None) -> date:
    """Return the animal's last day seen or its latest event's, whichever is later (so an
    event just recorded shows), else today."""
    known = [d for d in (animal.last_day, latest_event) if d is not None]
    return max(known) if known else datetime.now(UTC).date()


def _latest_event_day(record: Record, animal_id: str) -> date | None:
    at = current_events(record, animal_id).column("at")
    return None if len(at) == 0 else pc.max(at).as_py().astimezone(UTC).date()


def _presets(first: date | None, last: date) -> list[tuple[str, str]]:
    spans = [("30 days", 30), ("90 days", 90), ("1 year", 365)]
    out = [(label, f"from={last - timedelta(days=days - 1)}&to={last}") for label, days in spans]
    out.append(("all", f"from={first or last}&to={last}"))
    return out


def _shown_history(entries: list[Any], animal: AnimalSummary) -> list[Any]:
    """Return the newest `HISTORY_SHOWN` decisions, and the current link of the tracklet whose
    tag read confirmed the animal's identity even when it is older: the page names it."""
    shown = entries[:HISTORY_SHOWN]
    for entry in entries[HISTORY_SHOWN:]:
        if confirms_identity(animal, str(entry.tracklet), entry.current):
            shown.append(entry)
    return shown


def _strip(rows: list[dict[str, Any]]) -> tuple[list[StripDay], int]:
    """Return the keyframe strip, newest day first, at most STRIP_DAYS days: every k-th day
    of a longer period (always the newest), and k."""
    days = [r for r in reversed(rows) if r["keyframes"]]
    every = max(1, -(-len(days) // STRIP_DAYS))
    strip = [
        StripDay(
            r["day"],
            [
                frame_url(KeyframeRef(r["day"], k["device_id"], k["track_id"], k["t"]))
                for k in r["keyframes"]
            ],
            bool(r["anomalies"]),
        )
        for r in days[::every]
    ]
    return strip, every


@router.post("/animals/{animal_id}/events")
async def add_event(
    request: Request,
    session: Person,
    record: PageRecord,
    writer: PageWriter,
    animal_id: str,
    csrf: Csrf,
    kind: Annotated[str, Form(max_length=32)],
    at: Annotated[str, Form(max_length=40)],
    value: Annotated[str, Form(max_length=40)] = "",
    scale: Annotated[str, Form(max_length=16)] = "",
    unit: Annotated[str, Form(max_length=16)] = "",
    code: Annotated[str, Form(max_length=64)] = "",
    result: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    tz_offset: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    _check_form(session, csrf, *VETS)
    back = f"/animals/{quote(animal_id)}"
    offset = _minutes(tz_offset)
    if offset is None:
        session.note(
            "the event was not recorded: the page did not say its time zone (is JavaScript "
            "off?); reload the page and try again"
        )
        return _back(back + "#add-event")
    fields: dict[str, object] = {
        "animal_id": animal_id,
        "kind": kind,
        "at": _aware(at, offset),
        "author": session.name,
    }
    for name, text in (
        ("value", value),
        ("scale", scale),
        ("unit", unit),
        ("code", code),
        ("result", result),
        ("note", note),
    ):
        if text.strip():
            fields[name] = text.strip()
    try:
        event = parse_event(fields)
        recorded = await writer.run(lambda: add_events(record, [event]))
    except EventsRejected as exc:
        session.note("the event was not recorded: " + "; ".join(exc.problems))
        return _back(back + "#add-event")
    except HerdrecordError as exc:
        session.note(f"the event was not recorded: {exc}")
        return _back(back + "#add-event")
    if recorded.duplicates:
        session.note(f"already recorded: {recorded.duplicates[0].describe()}")
    else:
        session.note(f"recorded {kind} for {animal_id} ({recorded.event_ids[0]})")
    return _back(back + "#events")


def _minutes(text: str) -> int | None:
    """Return a time-zone offset in minutes (within ±16 h) from form text, else None."""
    text = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,4}", text) or abs(int(text)) > 16 * 60:
        return None
    return int(text)


def _aware(text: str, tz_offset: int) -> str:
    """Return a form's datetime-local value (the browser's wall clock) as UTC ISO text;
    `tz_offset` is `getTimezoneOffset()` of that date in the browser (UTC minus local, in
    minutes, daylight saving included)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return text  # parse_event names the problem
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC) + timedelta(minutes=tz_offset)
    return parsed.astimezone(UTC).isoformat()


# -- cohorts -------------------------------------------------------------------------------


@router.get("/cohorts")
def cohorts_page(
    request: Request, session: Person, record: PageRecord, query: str | None = None
) -> HTMLResponse:
    queries = list_queries()
    chosen = None
    params: dict[str, str] = {}
    table = None
    problem = None
    seconds = 0.0
    if query:
        try:
            chosen = get_query(query)
        except InvalidInput as exc:
            return error_page(request, 404, str(exc))
        params = _params(request, chosen)
        if "run" in request.query_params:
            started = time.monotonic()
            try:
                table = run_query(record, chosen.name, params)
            except InvalidInput as exc:
                problem = "; ".join(getattr(exc, "problems", None) or [str(exc)])
            seconds = time.monotonic() - started
    rows: list[list[Any]] = []
    columns: list[str] = []
    if table is not None:
        shown = render_rows(table.slice(0, SHOWN_ROWS), False, seconds, "json", query or "")
        assert isinstance(shown, Rows)
        columns, rows = shown.columns, shown.rows
    return _page(
        request,
        session,
        "cohorts.html",
        queries=queries,
        chosen=chosen,
        params=params,
        problem=problem,
        columns=columns,
        rows=rows,
        total=None if table is None else table.num_rows,
        shown=SHOWN_ROWS,
        seconds=seconds,
        download=urlencode({"query": query or "", **params}),
        animal_columns={c for c in columns if c in ANIMAL_COLUMNS},
    )


def _params(request: Request, query: NamedQuery) -> dict[str, str]:
    """Return the query's parameters given (not blank) in the URL."""
    declared = {p.name for p in query.params}
    return {k: v for k, v in request.query_params.items() if k in declared and v.strip()}


@router.get("/cohorts/download")
def cohort_download(
    request: Request,
    session: Person,
    record: PageRecord,
    query: Annotated[str, Query(max_length=128)],
    format: Annotated[str, Query(pattern="^(csv|parquet)$")] = "csv",
) -> Response:
    chosen = get_query(query)
    params = _params(request, chosen)
    try:
        table = run_query(record, chosen.name, params)
    except InvalidInput as exc:
        return error_page(request, 422, "; ".join(getattr(exc, "problems", None) or [str(exc)]))
    rendered = render_rows(table, False, 0.0, "csv" if format == "csv" else "parquet", query)
    assert isinstance(rendered, Response)
    return rendered


# -- review --------------------------------------------------------------------------------


@router.get("/review")
def review_page(
    request: Request,
    session: Person,
    record: PageRecord,
    item: Annotated[str | None, Query(max_length=260)] = None,
) -> HTMLResponse:
    page = open_questions(record, QUEUE_SHOWN)
    queue = list(page.items)
    current = next(
        (i for i in queue if f"{i.tracklet.device_id}:{i.tracklet.track_id}" == item),
        queue[0] if queue else None,
    )
    shown: dict[str, Any] = {}
    if current is not None:
        ref = current.tracklet
        choices = candidates(record, ref)
        shown = {
            "frames": [
                frame_url(k) for k in tracklet_keyframes(record, ref.device_id, ref.track_id)
            ][:8],
            "candidates": [
                {
                    "candidate": c,
                    "animal": get_animal(record, c.animal_id),
                    "frames": [frame_url(k) for k in animal_keyframes(record, c.animal_id)[:4]],
                }
                for c in choices
            ],
        }
    return _page(
        request,
        session,
        "review.html",
        queue=queue,
        total=page.total,
        current=current,
        legend=f"{AT_STAKE_MEANING} {MARGIN_MEANING}",
        may_write=session.may(*VETS),
        **shown,
    )


@router.post("/review/answer")
async def review_answer(
    session: Person,
    record: PageRecord,
    writer: PageWriter,
    csrf: Csrf,
    action: Annotated[str, Form(pattern="^(confirm|reassign|new|merge|split)$")],
    device_id: Annotated[str, Form(max_length=128)],
    track_id: Annotated[str, Form(max_length=128)],
    animal_id: Annotated[str, Form(max_length=128)] = "",
    name: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    _check_form(session, csrf, *VETS)
    ref = TrackletRef(device_id, track_id)
    by = session.name
    label = name.strip() or None

    def answer() -> ReviewOutcome:
        if action == "confirm":
            return confirm(record, ref, by)
        if action == "reassign":
            return reassign(record, ref, animal_id, by)
        if action == "merge":
            return same_animal(record, ref, animal_id, by)
        linked = linked_animal(record, ref)
        if action == "split" and linked is not None:
            return split(record, linked, [ref], by, label)
        return enrol_new(record, [ref], by, label)

    try:
        outcome = await writer.run(answer)
    except HerdrecordError as exc:
        session.note(f"not done: {exc}")
        return _back("/review?" + urlencode({"item": f"{device_id}:{track_id}"}))
    animals = ", ".join(outcome.animals)
    session.note(
        f"{outcome.action}: {device_id}:{track_id} → {animals} "
        f"({outcome.changed_links} links changed)"
    )
    return _back("/review")


templates.env.globals["quote"] = quote
templates.env.globals["confirms_identity"] = confirms_identity
