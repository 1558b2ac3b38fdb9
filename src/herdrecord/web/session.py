"""Signed-in people of the pages: a session per sign-in, kept on the server, named by a random
token in an HttpOnly, SameSite=Strict cookie.

A session remembers which key signed in, never the key itself; every request checks that the
key is still active, so revoking a key ends its sessions within the key cache's age. Signing
out forgets the session on the server, so a copied cookie dies with it. Sessions live in the
service's memory: a restart signs everyone out (the service is one process: one writer).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from herdrecord.api.keys import KeyRing, Role

COOKIE = "herdrecord_session"
PAGE_ROLES: tuple[Role, ...] = ("vet", "analyst", "admin")
MAX_SESSIONS = 10_000  # the oldest is forgotten past this many
MAX_NOTES = 5


class NotForPages(Exception):
    """The key is valid but its role does not use the pages (edge devices)."""


@dataclass
class Session:
    """One sign-in."""

    token: str
    key_id: str
    name: str
    role: Role
    csrf: str  # sent back with every form, so another site cannot post as this person
    expires_at: float  # time.time()
    notes: list[str] = field(default_factory=list)  # messages for the next page shown

    def may(self, *roles: Role) -> bool:
        """Whether the person's role is one of `roles`."""
        return self.role in roles

    def note(self, message: str) -> None:
        """Keep a message to show on the next page."""
        self.notes = [*self.notes, message][-MAX_NOTES:]

    def take_notes(self) -> list[str]:
        """Return and forget the messages kept for this page."""
        notes, self.notes = self.notes, []
        return notes

    def csrf_ok(self, presented: str | None) -> bool:
        """Whether a form carried this session's token."""
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class Sessions:
    """The service's sessions, by token."""

    def __init__(self, keys: KeyRing, lifetime_s: float) -> None:
        self._keys = keys
        self._lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def sign_in(self, presented: str) -> Session | None:
        """Return a new session for an active key, None for an unknown or revoked one;
        raise NotForPages for a key whose role has no pages."""
        found = self._keys.identify(presented.strip())
        if found is None:
            return None
        key_id, principal = found
        if principal.role not in PAGE_ROLES:
            raise NotForPages(principal.role)
        session = Session(
            token=secrets.token_urlsafe(32),
            key_id=key_id,
            name=principal.name,
            role=principal.role,
            csrf=secrets.token_urlsafe(32),
            expires_at=time.time() + self._lifetime_s,
        )
        with self._lock:
            self._by_token[session.token] = session
            while len(self._by_token) > MAX_SESSIONS:
                self._by_token.pop(next(iter(self._by_token)))
        return session

    def get(self, token: str | None) -> Session | None:
        """Return the live session of a cookie's token, or None (unknown, expired, or its key
        revoked since)."""
        if not token:
            return None
        with self._lock:
            session = self._by_token.get(token)
        if session is None:
            return None
        if session.expires_at < time.time() or self._keys.active(session.key_id) is None:
            self.sign_out(token)
            return None
        return session

    def sign_out(self, token: str | None) -> None:
        """Forget a session (nothing happens for an unknown token)."""
        if token:
            with self._lock:
                self._by_token.pop(token, None)
