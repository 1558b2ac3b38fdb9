"""Typed dependencies of the routes: who is calling (and may they), the record, the writer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from herdrecord.api.keys import KeyRing, Principal, Role
from herdrecord.api.problems import ApiError
from herdrecord.api.writer import Writer
from herdrecord.config import Settings
from herdrecord.lookup.animals import AnimalSummary, get_animal
from herdrecord.store.record import Record

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
        presented = "" if credentials is None else f"{credentials.scheme} {credentials.credentials}"
        principal = authenticate(request.app.state.keys, presented)
        if principal.role not in roles:
            raise ApiError(
                403,
                f"{principal.name} has role {principal.role}; this needs {' or '.join(roles)}",
            )
        return principal

    return check


def authenticate(keys: KeyRing, authorization: str) -> Principal:
    """Return who the `Authorization` header's key belongs to (401 when none or unknown)."""
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "send an API key as `Authorization: Bearer hr_...`", headers=_CHALLENGE)
    principal = keys.principal(presented.strip())
    if principal is None:
        raise ApiError(401, "the API key is unknown or revoked", headers=_CHALLENGE)
    return principal


def current_record(request: Request) -> Record:
    """Return the record the service serves."""
    record: Record = request.app.state.record
    return record


def current_settings(request: Request) -> Settings:
    """Return the service's settings."""
    settings: Settings = request.app.state.settings
    return settings


def current_writer(request: Request) -> Writer:
    """Return the service's one writer."""
    writer: Writer = request.app.state.writer
    return writer


def existing_animal(
    animal_id: str, record: Annotated[Record, Depends(current_record)]
) -> AnimalSummary:
    """Return the animal named in the path (404 when the record has none of that id)."""
    return get_animal(record, animal_id)


Edge = Annotated[Principal, Depends(allow(*EDGE))]
Reader = Annotated[Principal, Depends(allow(*READERS))]
Vet = Annotated[Principal, Depends(allow(*VETS))]
Analyst = Annotated[Principal, Depends(allow(*ANALYSTS))]
Admin = Annotated[Principal, Depends(allow(*ADMINS))]
CurrentRecord = Annotated[Record, Depends(current_record)]
CurrentSettings = Annotated[Settings, Depends(current_settings)]
CurrentWriter = Annotated[Writer, Depends(current_writer)]
ExistingAnimal = Annotated[AnimalSummary, Depends(existing_animal)]
