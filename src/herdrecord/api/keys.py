"""API keys of the HTTP service: one per principal, with a role, stored only as a hash.

A key reads `hr_<key_id>_<secret>`: `key_id` (public, 12 hex digits) finds the row, and the
SHA-256 of the whole key is compared in constant time. The secret has 256 random bits, so a
fast hash is enough (a slow password hash defends guessable secrets, which these are not).
The key itself is shown once, when it is made, and stored nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

import pyarrow as pa

from herdrecord.contract.models import IDENTIFIER_PATTERN
from herdrecord.errors import (
    InvalidInput,
    UnknownKey,
)
from herdrecord.store.record import Record

Role = Literal["edge", "vet", "analyst", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
KEY_PATTERN = re.compile(r"^hr_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class ApiKey:
    """One principal's key, as stored (never the key itself)."""

    name: str
    role: Role
    key_id: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    devices: tuple[str, ...] = ()  # an edge key's devices; () for any (a key made before)

    @property
    def active(self) -> bool:
        """Return whether the key still lets its holder in."""
        return self.revoked_at is None


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the key's name and role, and an edge key's devices."""

    name: str
    role: Role
    devices: tuple[str, ...] = ()  # () : any device (an edge key made before keys named them)

    def may_write_for(self, device_id: str) -> bool:
        """Return whether the key may upload batches of that device."""
        return self.role != "edge" or not self.devices or device_id in self.devices


def add_key(
    record: Record, name: str, role: str, by: str, devices: Sequence[str] = ()
) -> tuple[ApiKey, str]:
    """Make a key for a new principal; return it and the key text (shown once, never stored).

    An edge key names the devices it may upload for; one that names none may upload for any
    device (as every edge key made before keys named devices does), and `keys list` says so.
    A key of another role names none."""
    _check_name(name)
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    bound = tuple(dict.fromkeys(devices))
    if role != "edge" and bound:
        raise InvalidInput(f"only edge keys name devices; a {role} key reads or acts for all")
    for device in bound:
        if len(device) > 128 or not re.match(IDENTIFIER_PATTERN, device):
            raise InvalidInput(f"device id {device!r} is not a valid identifier")
    with record.writer():
        stored = _rows(record)
        if any(key.name == name and key.active for key in stored):
            raise InvalidInput(
                f"{name} already has a key; revoke it first (`herdrecord keys revoke`) to "
                "replace it"
            )
        taken = {key.key_id for key in stored}
        key_id = secrets.token_hex(6)
        while key_id in taken:
            key_id = secrets.token_hex(6)
        text = f"hr_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(name, role, key_id, datetime.now(UTC), by, None, bound)  # type: ignore[arg-type]
        row = {
            "name": name,
            "role": role,
            "key_id": key_id,
            "key_sha256": _digest(text),
            "created_at": key.created_at,
            "created_by": by,
            "revoked_at": None,
            "devices": list(bound) or None,
        }
        table = record.table("api_keys")
        table.add(pa.Table.from_pylist([row], schema=table.schema))
    return key, text


def list_keys(record: Record) -> list[ApiKey]:
    """Return every key ever made, active ones first, each group by name."""
    return sorted(_rows(record), key=lambda key: (not key.active, key.name, key.created_at))


def revoke_key(record: Record, name: str) -> ApiKey:
    """Revoke the principal's active key; it stops working within the service's key cache."""
    _check_name(name)
    with record.writer():
        active = [key for key in _rows(record) if key.name == name and key.active]
        if not active:
            raise UnknownKey(name)
        now = datetime.now(UTC)
        record.table("api_keys").update(
            where=f"name = '{name}' AND revoked_at IS NULL", values={"revoked_at": now}
        )
    key = active[0]
    return ApiKey(key.name, key.role, key.key_id, key.created_at, key.created_by, now, key.devices)


class KeyRing:
    """The service's view of the keys: checks a presented key; re-reads revocations often."""

    def __init__(self, record: Record, max_age_s: float) -> None:
        self._record = record
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._loaded_at = -float("inf")
        self._version = -1
        self._by_id: dict[str, tuple[str, Principal]] = {}

    def principal(self, presented: str) -> Principal | None:
        """Return who the key belongs to, or None for a malformed, unknown or revoked key."""
        found = self.identify(presented)
        return None if found is None else found[1]

    def identify(self, presented: str) -> tuple[str, Principal] | None:
        """Return the key's id and who it belongs to, or None for a malformed, unknown or
        revoked key."""
        found = KEY_PATTERN.match(presented)
        if found is None:
            return None
        self._refresh()
        entry = self._by_id.get(found.group(1))
        if entry is None or not hmac.compare_digest(entry[0], _digest(presented)):
            return None
        return found.group(1), entry[1]

    def active(self, key_id: str) -> Principal | None:
        """Return who the key of that id belongs to while it is not revoked, else None."""
        self._refresh()
        entry = self._by_id.get(key_id)
        return None if entry is None else entry[1]

    def _refresh(self) -> None:
        if time.monotonic() - self._loaded_at < self._max_age_s:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < self._max_age_s:
                return
            table = self._record.table("api_keys")
            version = table.version
            if version != self._version:
                rows = table.to_lance().to_table(
                    columns=["name", "role", "key_id", "key_sha256", "devices"],
                    filter="revoked_at IS NULL",
                )
                self._by_id = {
                    row["key_id"]: (
                        row["key_sha256"],
                        Principal(row["name"], row["role"], tuple(row["devices"] or ())),
                    )
                    for row in rows.to_pylist()
                }
                self._version = version
            self._loaded_at = time.monotonic()


def _rows(record: Record) -> list[ApiKey]:
    rows = record.dataset("api_keys").to_table(
        columns=[
            "name",
            "role",
            "key_id",
            "created_at",
            "created_by",
            "revoked_at",
            "devices",
        ]
    )
    return [ApiKey(**{**row, "devices": tuple(row["devices"] or ())}) for row in rows.to_pylist()]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check_name(name: str) -> None:
    if len(name) > 128 or not re.match(IDENTIFIER_PATTERN, name):
        raise InvalidInput(
            f"key name {name!r} must start with a letter or digit and hold only letters, "
            "digits and . _ : / @ + - (at most 128)"
        )
