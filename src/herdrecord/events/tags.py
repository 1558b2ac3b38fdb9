"""Animals by ear tag: how events name an animal when the farm knows it by its tag (the
`org.herdrecord.tag` identifier, `events/identifiers.py`)."""

from __future__ import annotations

from herdrecord.errors import InvalidInput
from herdrecord.events.identifiers import TAG_SCHEME, identifier_index, identifiers
from herdrecord.store.record import Record


def animals_by_tag(record: Record) -> dict[str, str]:
    """Return tag -> animal for the tags that name an animal today (merged ones left out)."""
    index = identifier_index(record)
    out: dict[str, str] = {}
    for ident in identifiers(record):
        if ident.scheme == TAG_SCHEME and ident.id not in out:
            try:
                out[ident.id] = index.resolve(TAG_SCHEME, ident.id)
            except InvalidInput:
                continue
    return out


def animal_with_tag(record: Record, tag: str) -> str:
    """Return the animal the record links to ear tag `tag`; raise InvalidInput if none."""
    try:
        return identifier_index(record).resolve(TAG_SCHEME, tag)
    except InvalidInput:
        raise InvalidInput(
            f"no animal in the record carries tag {tag.strip()!r} — `herdrecord animals` "
            "lists the tags"
        ) from None
