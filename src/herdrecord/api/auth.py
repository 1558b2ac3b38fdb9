"""Who may call what: API keys in `Authorization: Bearer`, checked against the record's keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from herdrecord.api.problems import ApiError
from herdrecord.keys import KeyRing, Principal, Role

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key made with `herdrecord keys add PATH NAME --role ROLE`, sent as "
    "`Authorization: Bearer hr_...`.",
)

EDGE: tuple[Role, ...] = ("edge", "admin")
READERS: tuple[Role, ...] = ("vet", "analyst", "admin")
VETS: tuple[Role, ...] = ("vet", "admin")
ANALYSTS: tuple[Role, ...] = ("analyst", "admin")
ADMINS: tuple[Role, ...] = ("admin",)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="herdrecord"'}


def allow(*roles: Role) -> Callable[..., Principal]:
    """Return a dependency that lets in only keys of the given roles (401 / 403 otherwise)."""

    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(
                401, "send an API key as `Authorization: Bearer hr_...`", headers=_CHALLENGE
            )
        keys: KeyRing = request.app.state.keys
        principal = keys.principal(credentials.credentials)
        if principal is None:
            raise ApiError(401, "the API key is unknown or revoked", headers=_CHALLENGE)
        if principal.role not in roles:
            raise ApiError(
                403,
                f"{principal.name} has role {principal.role}; this needs {' or '.join(roles)}",
            )
        request.state.principal = principal
        return principal

    return check
