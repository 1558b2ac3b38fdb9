"""The errors herdrecord raises: one hierarchy, one class per kind of failure.

Each class carries what an adapter needs on the class itself: `status` (the HTTP status the
service answers with) and `code` (a stable machine-readable name). The HTTP service
(`herdrecord.api.problems`) and the CLI (`herdrecord.cli.common`) map errors by these
attributes, in one place each; a status of 500 means "not the caller's fault", and its
message stays in the service's log.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar


class HerdrecordError(Exception):
    """Base class of every error herdrecord raises on purpose; its message is for a person."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"


class NotFound(HerdrecordError):
    """What was asked for (an animal, tracklet, event, keyframe, key, query) is not there."""

    status: ClassVar[int] = 404
    code: ClassVar[str] = "not_found"


class RecordNotFound(HerdrecordError):
    """No record at the given location."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"no herdrecord record at {uri} — create one with `herdrecord init {uri}`")


class RecordExists(HerdrecordError):
    """A record already exists where a new one was to be created."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"a record already exists at {uri}")


class SchemaTooNew(HerdrecordError):
    """The record was written by a newer herdrecord than this one."""

    def __init__(self, uri: str, found: int, supported: int) -> None:
        self.uri = uri
        self.found = found
        self.supported = supported
        super().__init__(
            f"record {uri} was written by schema {found}; this herdrecord reads up to "
            f"{supported} — upgrade herdrecord"
        )


class MigrationRequired(HerdrecordError):
    """The record's schema is older than this herdrecord's and must be migrated first."""

    def __init__(self, uri: str, found: int, supported: int) -> None:
        self.uri = uri
        self.found = found
        self.supported = supported
        super().__init__(
            f"record {uri} is at schema {found}; this herdrecord writes {supported} — "
            f"run `herdrecord migrate {uri}`"
        )


class RecordLocked(HerdrecordError):
    """Another writer holds the record's write lock."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "record_locked"

    def __init__(self, uri: str, holder: str, waited_s: float) -> None:
        self.uri = uri
        self.holder = holder
        self.waited_s = waited_s
        super().__init__(
            f"record {uri} is being written by another process ({holder}); waited "
            f"{waited_s:.0f} s — retry when it finishes, or raise HERDRECORD_LOCK_TIMEOUT_S"
        )


class BatchRejected(HerdrecordError):
    """An edge batch failed validation; nothing of it was stored."""

    def __init__(self, batch_id: str | None, problems: Sequence[str]) -> None:
        self.batch_id = batch_id
        self.problems = list(problems)
        label = batch_id if batch_id is not None else "batch"
        shown = "; ".join(self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{label} rejected: {shown}{more}")


class BatchConflict(HerdrecordError):
    """A batch_id already committed with different content was sent again."""

    def __init__(self, batch_id: str, stored_sha256: str, sent_sha256: str) -> None:
        self.batch_id = batch_id
        self.stored_sha256 = stored_sha256
        self.sent_sha256 = sent_sha256
        super().__init__(
            f"{batch_id} rejected: a batch with this id was already committed with different "
            f"content (stored {stored_sha256[:12]}, sent {sent_sha256[:12]}); batch ids are "
            "idempotency keys — give changed content a new batch_id"
        )


class InvalidInput(HerdrecordError):
    """An argument, file or setting given by a person is not usable."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "invalid_input"


class ExtraNotInstalled(HerdrecordError, ImportError):
    """A feature needs an optional extra (`pip install 'herdrecord[NAME]'`) that is not
    installed; an ImportError too, so `import` of the module that needs it raises it."""

    status: ClassVar[int] = 501
    code: ClassVar[str] = "extra_not_installed"

    def __init__(self, feature: str, extra: str, missing: str | None) -> None:
        self.feature = feature
        self.extra = extra
        self.missing = missing
        absent = f" ({missing} is not installed)" if missing else ""
        super().__init__(f"{feature}{absent} — pip install 'herdrecord[{extra}]'")


class UnknownAnimal(NotFound):
    """No animal with that id in the record."""

    def __init__(self, animal_id: str) -> None:
        self.animal_id = animal_id
        super().__init__(f"no animal {animal_id!r} in the record — `herdrecord animals` lists them")


class UnknownTracklet(NotFound):
    """No tracklet with that device and track id in the record."""

    def __init__(self, device_id: str, track_id: str) -> None:
        self.device_id = device_id
        self.track_id = track_id
        super().__init__(f"no tracklet {device_id}:{track_id} in the record")


class PushFailed(HerdrecordError):
    """The central service turned a push away for a reason no retry can fix (key, address)."""

    def __init__(self, url: str, status: int, message: str, hint: str) -> None:
        self.url = url
        self.http_status = status  # the central service's answer
        super().__init__(f"push to {url} refused ({status}: {message}); {hint}")


class UnknownKey(NotFound):
    """The principal has no active key."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name} has no active key — `herdrecord keys list` shows the keys")


class SqlError(HerdrecordError):
    """A free SQL query was refused, failed or ran too long."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "error"


class SqlRejected(SqlError):
    """The sandbox refused the query: not one SELECT, or it reached for files, URLs, extensions
    or settings."""

    code: ClassVar[str] = "rejected"


class SqlFailed(SqlError):
    """DuckDB could not run the query: a syntax error, an unknown column, out of memory ..."""

    code: ClassVar[str] = "failed"


class SqlTimedOut(SqlError):
    """The query ran past its time limit and its process was stopped."""

    code: ClassVar[str] = "timedout"

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        super().__init__(
            f"query ran past {limit_s:g} s and was stopped — add filters or a LIMIT, or raise "
            "HERDRECORD_SQL_TIMEOUT_S"
        )


class SqlResultTooLarge(SqlError):
    """The query's result grew past the byte cap; the reading stopped there."""

    code: ClassVar[str] = "result_too_large"

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        super().__init__(
            f"the result passed {limit_bytes:,} bytes (HERDRECORD_SQL_MAX_RESULT_BYTES) and was "
            "not sent — select fewer columns or rows, aggregate, or raise the setting"
        )


class SqlBusy(SqlError):
    """Every slot for SQL queries stayed busy for the queue time; the query was not run."""

    status: ClassVar[int] = 429
    code: ClassVar[str] = "busy"

    def __init__(self, running: int, waited_s: float) -> None:
        self.running = running
        # What the service answers as Retry-After: a slot frees when a query ends.
        self.retry_after_s = max(1, round(waited_s))
        super().__init__(
            f"{running} SQL {'query is' if running == 1 else 'queries are'} running, the most "
            f"at once (HERDRECORD_SQL_MAX_CONCURRENT), and none ended within {waited_s:g} s — "
            f"send it again in {self.retry_after_s} s"
        )


class UnknownKeyframe(NotFound):
    """No keyframe of that tracklet at that time."""

    def __init__(self, device_id: str, track_id: str, t: datetime) -> None:
        self.device_id = device_id
        self.track_id = track_id
        self.t = t
        super().__init__(f"no keyframe of {device_id}:{track_id} at {t.isoformat()}")


class UnknownEvent(NotFound):
    """No event with that id in the record."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"no event {event_id!r} in the record — `herdrecord event list` shows ids")


class EventSuperseded(HerdrecordError):
    """The event was already corrected or retracted; only the event in force can change."""

    status: ClassVar[int] = 409
    code: ClassVar[str] = "event_superseded"

    def __init__(self, event_id: str, by: str, retracted: bool) -> None:
        self.event_id = event_id
        self.by = by
        what = "retracted" if retracted else f"corrected by {by}; change that one instead"
        super().__init__(f"event {event_id} was already {what}")


class UnknownQuery(InvalidInput):
    """No named query of that name."""

    status: ClassVar[int] = 404
    code: ClassVar[str] = "not_found"

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        close = difflib.get_close_matches(name, self.known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        super().__init__(
            f"no named query {name!r}{hint}; the queries are {', '.join(self.known)} — "
            "`herdrecord query PATH --list` describes them"
        )
