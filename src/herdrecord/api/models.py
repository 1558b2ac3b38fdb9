"""Request and response bodies of the HTTP service (they make its OpenAPI document)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from herdrecord.api.keys import Role
from herdrecord.contract.models import Identifier
from herdrecord.events.rules import Author, EventKey, EventKind, LamenessScale, Note, ShortText
from herdrecord.lookup.review_queue import MARGIN_MEANING


class Strict(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Health(BaseModel):
    """Whether the service is up; with a valid key (any role), also what it serves."""

    status: Literal["ok"]
    record: str | None = Field(default=None, description="The record served (with a key).")
    farm_id: str | None = None
    schema_version: int | None = None
    queued_writes: int | None = Field(default=None, description="Writes waiting for the writer.")
    unlinked: bool | None = Field(
        default=None, description="Uploaded tracklets are waiting to be linked."
    )
    uploads: int | None = Field(
        default=None, description="Uploads answered since the service started."
    )
    commits: int | None = Field(
        default=None, description="Group commits that stored them (fewer: grouped)."
    )
    links: int | None = Field(default=None, description="Linking runs since the service started.")
    last_link_error: str | None = Field(
        default=None, description="Why the last linking run failed, if it did."
    )


class BatchResult(BaseModel):
    """What happened to one batch of an upload."""

    batch_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    rows: int = Field(description="Rows the batch added (0 unless accepted).")
    problems: list[str]


class UploadResult(BaseModel):
    """What happened to an upload: created (201) or all duplicates (200)."""

    status: Literal["accepted", "duplicate"]
    batches: list[BatchResult]


class LinkResult(BaseModel):
    """What a linking run decided."""

    pen_days: int
    tracklets: int
    linked: int
    unknown: int
    enrolled: list[str]
    seconds: float


class Animal(BaseModel):
    """One individual."""

    animal_id: str
    display_name: str | None
    tag_id: str | None
    species: str
    sex: str | None
    birth_date: date | None
    pen_id: str | None
    status: str = Field(description="active, departed or merged")
    merged_into: str | None
    provisional: bool = Field(
        description="Enrolled by linking, neither named by a person nor confirmed by a tag read."
    )
    created_at: datetime
    first_day: date | None = Field(description="First UTC day the animal was seen.")
    last_day: date | None = Field(description="Last UTC day the animal was seen.")
    days: int = Field(description="Days the animal was seen.")
    identity_confirmed_at: datetime | None = Field(
        default=None,
        description="When its own ear tag was first read on a tracklet linked to it (UTC).",
    )


class AnimalPage(BaseModel):
    """A page of animals."""

    total: int = Field(description="Animals matching the filters, over all pages.")
    animals: list[Animal]


class Calibration(BaseModel):
    """The record's standing-area to weight calibration."""

    available: bool
    weighings: int = Field(description="Scale weights matched to a day with an area.")
    needed: int = Field(description="Weighings a calibration takes.")
    slope: float | None = None
    cv_error_kg: float | None = Field(None, description="Cross-validated error, kg.")


class Event(BaseModel):
    """A health or production event in force."""

    event_id: str
    animal_id: str
    kind: str
    at: datetime
    value: float | None
    unit: str | None
    scale: str | None
    code: str | None
    result: str | None
    withdrawal_days: float | None
    note: str | None
    author: str
    recorded_at: datetime
    supersedes: str | None
    event_key: str | None = Field(
        default=None, description="The key its sender gave it, if any (see POST /v1/events)."
    )


class EventPage(BaseModel):
    """Events in force, oldest first."""

    total: int
    events: list[Event]


class Tracklet(Strict):
    """A tracklet: the edge device and its track id."""

    device_id: Identifier
    track_id: Identifier


class LinkEntry(BaseModel):
    """One decision in an animal's link history."""

    decided_at: datetime
    tracklet: Tracklet
    animal_id: str | None
    method: str
    decided_by: str
    score: float | None
    current: bool


class Timeline(BaseModel):
    """An animal's days, events and link history over a period."""

    animal: Animal
    start: date | None
    end: date | None
    behaviours: list[str] = Field(description="The record's behaviour classes, in order.")
    calibration: Calibration
    days: list[dict[str, Any]] = Field(
        description="One row per UTC day, the columns of the `days` view (docs/timeline.md) "
        "plus `weight_est_kg` and `scale_weight_kg`."
    )
    events: list[Event]
    links: list[LinkEntry] = Field(description="Newest first, at most `links` of them.")
    links_total: int


class Keyframe(BaseModel):
    """One chosen keyframe of an animal-day; `url` fetches the JPEG."""

    day: date
    device_id: str
    track_id: str
    t: datetime
    url: str


class KeyframePage(BaseModel):
    """An animal's chosen keyframes, by day."""

    animal_id: str
    total: int
    keyframes: list[Keyframe]


class EventIn(Strict):
    """An event to record; its author is the key's principal unless given."""

    animal_id: Identifier
    kind: EventKind
    at: datetime
    author: Author | None = None
    scale: LamenessScale | None = None
    value: float | None = None
    unit: ShortText | None = None
    code: ShortText | None = None
    result: ShortText | None = None
    withdrawal_days: float | None = None
    note: Note | None = None
    event_key: EventKey | None = Field(
        default=None,
        description="Your own id of the event (unique per record): sending it again is a "
        "duplicate, not stored. Without one, an event with the same animal, kind, time and "
        "values as one recorded is the duplicate.",
    )


class EventsIn(Strict):
    """Events stored together or not at all."""

    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class EventDuplicateOut(BaseModel):
    """An event sent again: not stored."""

    index: int = Field(description="Its position in the request's events, from 0.")
    event_id: str = Field(description="The event recorded before, which it repeats.")
    by: Literal["event_key", "content"] = Field(
        description="event_key: the same key; content: the same animal, kind, time and values."
    )
    withdrawn: bool = Field(description="That event has since been corrected or retracted.")


class EventIds(BaseModel):
    """Ids of the events stored, and the repeats left out."""

    event_ids: list[str]
    duplicates: list[EventDuplicateOut] = Field(default_factory=list)


class AnimalIdentifierIn(Strict):
    """An identifier an animal carries, as ICAR ADE names animals, and the days it holds."""

    scheme: Annotated[
        str,
        Field(
            min_length=1,
            max_length=64,
            description="who issues the id: eu.animalId, managementTag, std.iso.11785 ...",
        ),
    ]
    id: Annotated[str, Field(min_length=1, max_length=64, description="the id under it")]
    valid_from: date | None = Field(default=None, description="first day it holds")
    valid_to: date | None = Field(default=None, description="last day it holds")


class AnimalIdentifier(AnimalIdentifierIn):
    """One identifier of an animal."""

    animal_id: str
    recorded_by: str


class AnimalIdentifiers(BaseModel):
    """An animal's identifiers; `added` says whether the request stored one (a repeat
    stores nothing)."""

    identifiers: list[AnimalIdentifier]
    added: bool | None = None


class Retraction(Strict):
    """Why an event is withdrawn."""

    reason: Note


class ReviewItem(BaseModel):
    """One link worth a person's look, most valuable first."""

    tracklet: Tracklet
    pen_id: str
    start: datetime
    end: datetime
    animal_id: str | None
    score: float | None = Field(description="Cosine similarity to the linked animal.")
    margin: float | None = Field(description=MARGIN_MEANING)
    priority: float = Field(
        description="Tracked seconds at stake: the tracklet's seconds times how unsure its "
        "link is (1 - confidence; all of them for an unknown animal). The items are ranked by it."
    )
    reason: str = Field(
        description="Why the question is open, in words: an unknown animal, a confidence, or "
        "a margin as a tie with the runner-up or a lead ahead or behind it."
    )


class ReviewQueue(BaseModel):
    """The first open review items, and how many are open in all ("20 of 410")."""

    total: int = Field(description="Open questions in the queue, shown in items or not.")
    items: list[ReviewItem] = Field(description="The first `limit` of them, ranked.")


class ConfirmIn(Strict):
    """Confirm a tracklet's current animal."""

    tracklet: Tracklet


class ReassignIn(Strict):
    """Link a tracklet to another animal."""

    tracklet: Tracklet
    animal_id: Identifier


class NewAnimalIn(Strict):
    """Enrol a new animal for tracklets."""

    tracklets: list[Tracklet] = Field(min_length=1, max_length=10_000)
    name: ShortText | None = None


class MergeIn(Strict):
    """Merge animal `gone` into `keep` (one animal seen under two ids)."""

    keep: Identifier
    gone: Identifier


class SplitIn(Strict):
    """Move tracklets of an animal to a new animal."""

    animal_id: Identifier
    tracklets: list[Tracklet] = Field(min_length=1, max_length=10_000)
    name: ShortText | None = None


class ReviewResult(BaseModel):
    """What an answer changed."""

    action: str
    animals: list[str]
    relinked_pen_days: int
    changed_links: int


class QueryParam(BaseModel):
    """A parameter of a named query."""

    name: str
    type: str
    meaning: str
    required: bool
    default: str | float | int | bool | None
    low: float | None
    high: float | None
    choices: list[str]


class NamedQuery(BaseModel):
    """A named cohort question."""

    name: str
    description: str
    params: list[QueryParam]


class QueryList(BaseModel):
    """The named queries."""

    queries: list[NamedQuery]


QueryValue = Annotated[str, Field(max_length=1024)] | int | float | bool | None


class QueryIn(Strict):
    """Parameters of a named query: JSON numbers, booleans, text (as on the command line:
    "3", "2026-09-28") or null (the parameter's default)."""

    params: dict[str, QueryValue] = Field(
        default_factory=dict,
        max_length=64,
        description='By name, e.g. {"min_score": 2, "measure": "gait_mean"}; each is checked '
        "against the query's header (GET /v1/queries lists them).",
    )


class SqlIn(Strict):
    """One read-only SELECT over the record's views."""

    sql: str = Field(min_length=1, max_length=100_000)


class Rows(BaseModel):
    """Rows of a query: column names, then each row's values in that order."""

    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="More rows were left out (the row limit).")
    seconds: float


class KeyIn(Strict):
    """A new principal."""

    name: Identifier
    role: Role
    devices: list[Identifier] = Field(
        default_factory=list,
        description="An edge key's devices, the only ones it may upload batches for; an edge "
        "key with none may upload for any device.",
    )


class KeyInfo(BaseModel):
    """A principal's key as stored (never the key itself)."""

    name: str
    role: str
    key_id: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    devices: list[str] = Field(
        default_factory=list,
        description="The devices an edge key may upload for; empty: any device.",
    )


class NewKey(KeyInfo):
    """A key just made: `key` is shown this once and stored nowhere."""

    key: str


class KeyList(BaseModel):
    """Every key ever made, active ones first."""

    keys: list[KeyInfo]
