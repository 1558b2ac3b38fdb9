"""API keys (admins): make one for a principal (shown once), list them, revoke one."""

from __future__ import annotations

from fastapi import APIRouter

from herdrecord.api.deps import Admin, CurrentRecord, CurrentWriter
from herdrecord.api.keys import ApiKey, add_key, list_keys, revoke_key
from herdrecord.api.models import KeyIn, KeyInfo, KeyList, NewKey
from herdrecord.api.problems import responses

router = APIRouter(tags=["keys"])


@router.get("/keys", summary="Every API key (never the keys themselves)", responses=responses())
def get_keys(principal: Admin, record: CurrentRecord) -> KeyList:
    """Return every key ever made, active ones first."""
    return KeyList(keys=[_info(key) for key in list_keys(record)])


@router.post(
    "/keys", summary="Make a key for a new principal", status_code=201, responses=responses()
)
async def post_key(
    principal: Admin, record: CurrentRecord, writer: CurrentWriter, body: KeyIn
) -> NewKey:
    """Return the new key; it is shown this once and stored only as a hash."""
    key, text = await writer.run(
        lambda: add_key(record, body.name, body.role, principal.name, body.devices)
    )
    return NewKey(**_info(key).model_dump(), key=text)


@router.delete("/keys/{name}", summary="Revoke a principal's key", responses=responses(404))
async def delete_key(
    principal: Admin, record: CurrentRecord, writer: CurrentWriter, name: str
) -> KeyInfo:
    """Revoke the key; the service refuses it from its next key refresh (about a second)."""
    return _info(await writer.run(lambda: revoke_key(record, name)))


def _info(key: ApiKey) -> KeyInfo:
    return KeyInfo(
        name=key.name,
        role=key.role,
        key_id=key.key_id,
        created_at=key.created_at,
        created_by=key.created_by,
        revoked_at=key.revoked_at,
        devices=list(key.devices),
    )
