"""Where a record lives: a local directory or an object-store prefix (`s3://bucket/prefix`).

Lance reads and writes the tables in both; the few files herdrecord keeps beside them (the
writer lock, the announced-batches note, the FAISS index) go through a `Location`, so the
rest of the code does not care which kind it has.

On object storage the writer lock is an object created with a conditional write
(`If-None-Match: *`: a second writer gets 412 and waits), held as a lease that its holder
renews; a lease its holder stopped renewing (a killed process) is taken over with a
conditional delete (`If-Match`), so two waiters never both take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from uuid import uuid4

from herdrecord.errors import HerdrecordError, InvalidInput, RecordLocked

if TYPE_CHECKING:  # LanceDB is imported only by the commands that write
    from lancedb.db import DBConnection

LOCK_FILE = ".herdrecord.lock"  # the writer lock: a flock on it, or on S3 a lease object
OBJECT_SCHEMES = ("s3",)


def location_of(uri: str, storage_options: dict[str, str] | None = None) -> Location:
    """Return the location a record URI names: a directory, file:// or s3://bucket/prefix."""
    parsed = urlparse(uri)
    if parsed.scheme in OBJECT_SCHEMES:
        if not parsed.netloc:
            raise InvalidInput(f"{uri}: name a bucket, as in s3://bucket/herd")
        return ObjectLocation(parsed.netloc, parsed.path.strip("/"), dict(storage_options or {}))
    if "://" in uri and parsed.scheme != "file":
        raise InvalidInput(
            f"{uri}: records live in a local directory or at s3://bucket/prefix, "
            f"not at {parsed.scheme}://"
        )
    return LocalLocation(Path(uri.removeprefix("file://")).expanduser().resolve())


class Location(ABC):
    """A record's place, and its side files (small, whole-object reads and writes)."""

    uri: str

    @property
    @abstractmethod
    def local_path(self) -> Path | None:
        """Return the directory of a local record; None on object storage."""

    @abstractmethod
    def connect(self) -> DBConnection:
        """Return a LanceDB connection to the record's tables."""

    @abstractmethod
    def table_uri(self, name: str) -> str:
        """Return where a table's Lance dataset is (`name.lance` under the record)."""

    @abstractmethod
    def read(self, name: str) -> bytes | None:
        """Return a side file's bytes, or None if there is none."""

    @abstractmethod
    def write(self, name: str, data: bytes) -> None:
        """Replace a side file whole and durably (a reader sees the old or the new)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove a side file if it is there."""

    @abstractmethod
    def size_under(self, prefix: str) -> int:
        """Return the bytes stored under a prefix (a table's `name.lance`)."""

    @abstractmethod
    def is_empty(self) -> bool:
        """Return whether nothing is stored there yet."""

    @abstractmethod
    def prepare(self) -> None:
        """Make the place ready to create a record in."""

    @abstractmethod
    def acquire_lock(self, timeout_s: float) -> Lock:
        """Take the record's single-writer lock, waiting up to `timeout_s`."""

    @abstractmethod
    def children(self) -> list[Location]:
        """Return the places directly under this one (a fleet's farms)."""

    @property
    def storage_options(self) -> dict[str, str] | None:
        """Return the options Lance needs to reach the place (None: none)."""
        return None

    def has_table(self, name: str) -> bool:
        """Return whether a table of that name is stored."""
        return self.size_under(f"{name}.lance/_versions") > 0

    def table_names(self) -> list[str]:
        """Return the names of the tables stored here, sorted (what LanceDB lists)."""
        names = [
            child.uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".lance")
            for child in self.children()
            if child.uri.rstrip("/").endswith(".lance")
        ]
        return sorted(name for name in names if self.has_table(name))


class Lock(ABC):
    """A held writer lock."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock back."""

    def ensure_held(self) -> None:  # noqa: B027 - a local lock cannot be lost
        """Raise unless the lock is still held (a lease can be lost; a flock cannot)."""


# --- a local directory ----------------------------------------------------------------------


class LocalLocation(Location):
    """A record in a directory on this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uri = str(path)

    @property
    def local_path(self) -> Path:
        """Return the record's directory."""
        return self.path

    def connect(self) -> DBConnection:
        """Return a LanceDB connection to the directory."""
        import lancedb  # ~1 s to import: only writers and migrations need it

        connection: DBConnection = lancedb.connect(str(self.path))
        return connection

    def table_uri(self, name: str) -> str:
        """Return the table's dataset directory."""
        return str(self.path / f"{name}.lance")

    def read(self, name: str) -> bytes | None:
        """Return a side file's bytes, or None."""
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        """Write a side file whole and durably."""
        write_durably(self.path / name, data)

    def delete(self, name: str) -> None:
        """Remove a side file."""
        (self.path / name).unlink(missing_ok=True)

    def has_table(self, name: str) -> bool:
        """Return whether a table of that name is stored (its versions directory has one)."""
        versions = self.path / f"{name}.lance" / "_versions"
        return versions.is_dir() and next(versions.iterdir(), None) is not None

    def size_under(self, prefix: str) -> int:
        """Return the bytes of the files under `prefix`."""
        path = self.path / prefix
        if path.is_file():
            return path.stat().st_size
        if not path.exists():
            return 0
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    def is_empty(self) -> bool:
        """Return whether the directory is missing or empty."""
        return not self.path.exists() or not any(self.path.iterdir())

    def children(self) -> list[Location]:
        """Return the directories in this one."""
        if not self.path.is_dir():
            return []
        return [LocalLocation(p) for p in sorted(self.path.iterdir()) if p.is_dir()]

    def prepare(self) -> None:
        """Create the directory."""
        self.path.mkdir(parents=True, exist_ok=True)

    def acquire_lock(self, timeout_s: float) -> Lock:
        """Take the advisory lock on the directory's lock file."""
        return WriteLock.acquire(self.path, timeout_s)


def write_durably(target: Path, data: bytes) -> None:
    """Replace a file whole through a fsynced temporary file and a fsynced rename: a reader,
    or the file after a power cut, has the old bytes or the new."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(target.parent)  # the rename itself must survive a power cut


def fsync_directory(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class WriteLock(Lock):
    """An exclusive advisory lock on a local record's lock file (one writer per record)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @classmethod
    def acquire(cls, path: Path, timeout_s: float) -> WriteLock:
        """Take the lock, waiting up to `timeout_s`; raise RecordLocked if it stays held."""
        handle = open(path / LOCK_FILE, "a+")  # noqa: SIM115 - held for the lock's lifetime
        deadline = time.monotonic() + timeout_s
        waited_from = time.monotonic()
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown process"
                    handle.close()
                    raise RecordLocked(str(path), holder, time.monotonic() - waited_from) from None
                time.sleep(0.05)
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(UTC):%H:%M:%S}Z"
        )
        handle.flush()
        return cls(handle)

    def release(self) -> None:
        """Give the lock back."""
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()


# --- an object store ------------------------------------------------------------------------

# Lance's (object_store's) option names, and boto3's names for the same things.
_BOTO_OPTIONS = {
    "aws_access_key_id": "aws_access_key_id",
    "access_key_id": "aws_access_key_id",
    "aws_secret_access_key": "aws_secret_access_key",
    "secret_access_key": "aws_secret_access_key",
    "aws_session_token": "aws_session_token",
    "session_token": "aws_session_token",
    "aws_region": "region_name",
    "region": "region_name",
    "aws_endpoint": "endpoint_url",
    "endpoint": "endpoint_url",
}


class ObjectLocation(Location):
    """A record under a prefix of an S3(-compatible) bucket."""

    def __init__(self, bucket: str, prefix: str, options: dict[str, str]) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.options = options
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._client: Any = None

    @property
    def local_path(self) -> None:
        """Return None: the record is not on this machine."""
        return None

    @property
    def storage_options(self) -> dict[str, str] | None:
        """Return the options Lance needs to reach the store."""
        return self.options or None

    @property
    def client(self) -> Any:
        """Return a boto3 S3 client made from the same options as Lance's."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            kwargs = {_BOTO_OPTIONS[k]: v for k, v in self.options.items() if k in _BOTO_OPTIONS}
            # Short timeouts: a call's retries must end well inside the lock's lease.
            config = Config(
                connect_timeout=5,
                read_timeout=15,
                retries={"max_attempts": 3, "mode": "standard"},
            )
            self._client = boto3.client("s3", config=config, **kwargs)
        return self._client

    def key(self, name: str) -> str:
        """Return the object key of a name under the record's prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def connect(self) -> DBConnection:
        """Return a LanceDB connection to the prefix."""
        import lancedb  # ~1 s to import: only writers and migrations need it

        connection: DBConnection = lancedb.connect(self.uri, storage_options=self.storage_options)
        return connection

    def table_uri(self, name: str) -> str:
        """Return the table's dataset prefix."""
        return f"{self.uri}/{name}.lance"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the store's refusals into one clear line."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket", "404"):
                raise InvalidInput(f"{self.uri}: no bucket {self.bucket!r}") from None
            raise InvalidInput(f"{self.uri}: the object store refused ({code}: {error})") from None
        except BotoCoreError as error:
            raise InvalidInput(f"{self.uri}: cannot reach the object store ({error})") from None

    def read(self, name: str) -> bytes | None:
        """Return an object's bytes, or None."""
        with self._errors():
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
            except self.client.exceptions.NoSuchKey:
                return None
            return bytes(response["Body"].read())

    def write(self, name: str, data: bytes) -> None:
        """Put an object (a PUT is atomic: readers see the old or the new)."""
        with self._errors():
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)

    def delete(self, name: str) -> None:
        """Delete an object."""
        with self._errors():
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def size_under(self, prefix: str) -> int:
        """Return the bytes of the object `prefix`, or of the objects under it."""
        key = self.key(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        total = 0
        with self._errors():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                for item in page.get("Contents", []):
                    if item["Key"] == key or item["Key"].startswith(key + "/"):
                        total += int(item["Size"])
        return total

    def is_empty(self) -> bool:
        """Return whether no object lies under the prefix."""
        prefix = self.prefix + "/" if self.prefix else ""
        with self._errors():
            found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        return int(found.get("KeyCount", 0)) == 0

    def has_table(self, name: str) -> bool:
        """Return whether a table of that name is stored (one listed object answers)."""
        with self._errors():
            found = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.key(f"{name}.lance/_versions/"), MaxKeys=1
            )
        return int(found.get("KeyCount", 0)) > 0

    def children(self) -> list[Location]:
        """Return the prefixes directly under this one."""
        prefix = self.prefix + "/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        found = []
        with self._errors():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                found += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
        return [ObjectLocation(self.bucket, p.rstrip("/"), self.options) for p in sorted(found)]

    def prepare(self) -> None:
        """Check the bucket can be reached (a missing bucket is a clear error)."""
        with self._errors():
            self.client.head_bucket(Bucket=self.bucket)

    def acquire_lock(self, timeout_s: float) -> Lock:
        """Take the record's lease lock object."""
        return ObjectLock.acquire(self, timeout_s)


@dataclass
class _Lease:
    etag: str
    holder: str
    token: str  # this holder's own mark: a retried renewal that landed is recognised


@dataclass(frozen=True)
class _Held:
    lease: _Lease
    age_s: float  # since its last renewal, by the store's own clock (no skew between hosts)


class ObjectLock(Lock):
    """A writer lock held as a renewed lease object, created with `If-None-Match: *`.

    Staleness is judged by the store's clock alone (the object's Last-Modified against the
    response's Date), so hosts whose clocks disagree never take a live lease. The holder
    checks `ensure_held` before each commit: a lease it failed to renew for half its length,
    or one another writer took over, stops the write before anything is committed.
    """

    LEASE_S = 60.0  # a holder that stops renewing for this long has died

    def __init__(self, location: ObjectLocation, lease: _Lease) -> None:
        self._location = location
        self._lease = lease
        self._renewed_at = time.monotonic()
        self._lost: str | None = None
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="herdrecord-lease", daemon=True)
        self._renewer.start()

    @classmethod
    def acquire(cls, location: ObjectLocation, timeout_s: float) -> ObjectLock:
        """Create the lock object, waiting for a live holder and taking over a dead one's."""
        from botocore.exceptions import ClientError

        client, key = location.client, location.key(LOCK_FILE)
        started = time.monotonic()
        with location._errors():
            while True:
                lease = _Lease("", f"pid {os.getpid()} on {socket.gethostname()}", uuid4().hex)
                try:
                    put = client.put_object(
                        Bucket=location.bucket, Key=key, Body=_lease_body(lease), IfNoneMatch="*"
                    )
                    return cls(location, _Lease(put["ETag"], lease.holder, lease.token))
                except ClientError as error:
                    if _status(error) not in (409, 412):
                        raise
                held = _read_lease(location)
                if held is None:
                    continue  # released in between: try again at once
                if held.age_s > cls.LEASE_S:  # its holder stopped renewing: it has died
                    try:
                        client.delete_object(
                            Bucket=location.bucket, Key=key, IfMatch=held.lease.etag
                        )
                        continue
                    except ClientError as error:
                        # 412: renewed or taken meanwhile; 404: another waiter removed it.
                        if _status(error) not in (404, 412):
                            raise InvalidInput(
                                f"{location.uri}: the lock of a writer that stopped "
                                f"({held.lease.holder}) cannot be removed ({_status(error)}); "
                                f"once sure it is gone, delete {key} by hand"
                            ) from None
                waited = time.monotonic() - started
                if waited >= timeout_s:
                    raise RecordLocked(location.uri, held.lease.holder, waited)
                time.sleep(0.2)

    def ensure_held(self) -> None:
        """Raise unless this writer still holds the lease (checked before each commit)."""
        since = time.monotonic() - self._renewed_at
        if self._lost is None and since > self.LEASE_S / 2:
            self._lost = f"not renewed for {since:.0f} s"
        if self._lost is not None:
            raise HerdrecordError(
                f"{self._location.uri}: this writer lost its lock ({self._lost}); nothing "
                "more was written: run it again"
            )

    def release(self) -> None:
        """Stop renewing and delete the lock object (only if it is still this holder's)."""
        from botocore.exceptions import BotoCoreError, ClientError

        self._stop.set()
        self._renewer.join()
        with self._guard, contextlib.suppress(BotoCoreError, ClientError):
            self._location.client.delete_object(
                Bucket=self._location.bucket,
                Key=self._location.key(LOCK_FILE),
                IfMatch=self._lease.etag,
            )

    def _renew(self) -> None:
        while not self._stop.wait(self.LEASE_S / 4):
            with self._guard:
                if not self._renew_once():
                    return

    def _renew_once(self) -> bool:
        """Renew the lease; return False once it is lost for good."""
        from botocore.exceptions import BotoCoreError, ClientError

        location = self._location
        try:
            put = location.client.put_object(
                Bucket=location.bucket,
                Key=location.key(LOCK_FILE),
                Body=_lease_body(self._lease),
                IfMatch=self._lease.etag,
            )
        except ClientError as error:
            if _status(error) != 412:
                return True  # tried again next time; the lease lasts four renewals
            held = _read_lease(location)  # a retried renewal that landed, or a takeover?
            if held is None or held.lease.token != self._lease.token:
                self._lost = "another writer took it over"
                return False
            put = {"ETag": held.lease.etag}
        except BotoCoreError:
            return True
        except Exception as error:  # recorded: ensure_held stops the writer
            self._lost = f"renewal failed: {type(error).__name__}: {error}"
            return False
        self._lease = _Lease(put["ETag"], self._lease.holder, self._lease.token)
        self._renewed_at = time.monotonic()
        return True


def _lease_body(lease: _Lease) -> bytes:
    return json.dumps(
        {"holder": f"{lease.holder} since {datetime.now(UTC):%H:%M:%S}Z", "token": lease.token}
    ).encode()


def _read_lease(location: ObjectLocation) -> _Held | None:
    """Return the lock object's lease and age by the store's clock, or None if it is gone."""
    try:
        got = location.client.get_object(Bucket=location.bucket, Key=location.key(LOCK_FILE))
    except location.client.exceptions.NoSuchKey:
        return None
    try:
        body = json.loads(got["Body"].read())
        holder, token = str(body["holder"]), str(body["token"])
    except (ValueError, KeyError, TypeError):
        holder, token = "a lock object herdrecord cannot read", ""
    served = got["ResponseMetadata"].get("HTTPHeaders", {}).get("date")
    now = parsedate_to_datetime(served) if served else datetime.now(UTC)
    age = (now - got["LastModified"]).total_seconds()
    return _Held(_Lease(got["ETag"], holder, token), age)


def _status(error: Any) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
