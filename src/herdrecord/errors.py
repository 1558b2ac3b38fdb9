"""The errors herdrecord raises: one base class, one subclass per kind of failure."""

from __future__ import annotations

from collections.abc import Sequence


class HerdrecordError(Exception):
    """Base class of every error herdrecord raises on purpose; its message is for a person."""


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


class UnknownAnimal(HerdrecordError):
    """No animal with that id in the record."""

    def __init__(self, animal_id: str) -> None:
        self.animal_id = animal_id
        super().__init__(f"no animal {animal_id!r} in the record — `herdrecord animals` lists them")


class UnknownTracklet(HerdrecordError):
    """No tracklet with that device and track id in the record."""

    def __init__(self, device_id: str, track_id: str) -> None:
        self.device_id = device_id
        self.track_id = track_id
        super().__init__(f"no tracklet {device_id}:{track_id} in the record")


class PushFailed(HerdrecordError):
    """The central service turned a push away for a reason no retry can fix (key, address)."""

    def __init__(self, url: str, status: int, message: str, hint: str) -> None:
        self.url = url
        self.status = status
        super().__init__(f"push to {url} refused ({status}: {message}); {hint}")
