"""One ADE event and one record event: its columns, its payload, its key.

An imported ADE event becomes the event its form reads (`forms.FORMS`). What the form does
not take (a diagnosis' site, a treatment's batches, a weight's device ...) is its payload:
the event's note keeps it on a last line `ade: {...}` (compact JSON) below the ADE remark,
and the export puts it back. The ADE `meta.source` and `meta.sourceId` (or the event's
`id`) become the event's key `ade:<source> <sourceId>`, so that importing an event twice
stores it once. An exported event whose columns its form cannot say (a treatment's dose in
mg/kg, a sale's buyer) carries them in an extension property `herdrecord`, which an import
reads back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from herdrecord.events.ade.forms import (
    FORM_OF_KIND,
    FORMS,
    Context,
    Form,
    Unmappable,
    format_time,
    parse_time,
)
from herdrecord.events.rules import MAX_EVENT_KEY_CHARS, MAX_NOTE_CHARS

ANIMAL_SCHEME = "org.herdrecord.animal"  # an animal named by its id in the record
SOURCE = "org.herdrecord"  # meta.source of the events a record writes
KEY_PREFIX = "ade:"
PAYLOAD_PREFIX = "ade: "
EXTENSION = "herdrecord"
DEFAULT_AUTHOR = "ICAR ADE import"  # an event without responsible, creator or source
# Fields of every event that map to the event itself, never to its payload; `meta` beyond
# source and sourceId (modified, created ...) is synchronisation data, not what happened.
COMMON = frozenset(
    {"resourceType", "id", "meta", "animal", "eventDateTime", "responsible", "remark", EXTENSION}
)
FIXED_UNITS = ("kg", "score", "head")
VALUES = ("scale", "value", "unit", "code", "result", "withdrawal_days")


def event_columns(item: Mapping[str, Any], animal_id: str, context: Context) -> dict[str, Any]:
    """Return the columns of the record event an ADE event (valid by its schema) says, for
    `parse_event`; raise Unmappable when herdrecord cannot keep it."""
    form = FORMS[item["resourceType"]]
    columns = form_columns(item, form, context)
    said = form.write(columns, context)
    payload = {k: v for k, v in item.items() if k not in COMMON and said.get(k) != v}
    if FORM_OF_KIND[columns["kind"]] is not form:
        payload["resourceType"] = form.resource_type
    meta = item.get("meta") or {}
    author = item.get("responsible") or meta.get("creator") or meta.get("source") or DEFAULT_AUTHOR
    return {
        **columns,
        "animal_id": animal_id,
        "author": author,
        "note": _note(item.get("remark"), payload),
        "event_key": _key(meta, item.get("id")),
    }


def form_columns(item: Mapping[str, Any], form: Form, context: Context) -> dict[str, Any]:
    """Return the kind, time and values that `form` reads from `item`."""
    if "eventDateTime" not in item:
        raise Unmappable(".eventDateTime", "give when it happened")
    columns: dict[str, Any] = {name: None for name in VALUES}
    columns["at"] = parse_time(item["eventDateTime"])
    columns.update(form.read(item, context))
    extension = item.get(EXTENSION)
    if extension is not None:
        if not isinstance(extension, Mapping) or not set(extension) <= set(VALUES):
            raise Unmappable(f".{EXTENSION}", f"give an object of {', '.join(VALUES)}")
        columns.update(extension)
    return columns


def ade_event(event: Mapping[str, Any], context: Context) -> dict[str, Any] | None:
    """Return a record event (a row of `events`) as an ADE event, or None for a kind ADE
    has no resource for (a note, a weaning)."""
    if event["kind"] not in FORM_OF_KIND:
        return None
    remark, payload = split_note(event["note"])
    form = FORMS.get(payload.pop("resourceType", ""), FORM_OF_KIND[event["kind"]])
    source, source_id = key_source(event["event_key"]) or (SOURCE, event["event_id"])
    item: dict[str, Any] = {
        "resourceType": form.resource_type,
        "id": source_id,
        "meta": {
            "source": source,
            "sourceId": source_id,
            "modified": format_time(event["recorded_at"]),
        },
        "animal": {"scheme": ANIMAL_SCHEME, "id": event["animal_id"]},
        "eventDateTime": format_time(event["at"]),
        "responsible": event["author"],
    }
    if remark is not None:
        item["remark"] = remark
    fields = form.write(event, context)
    said = _said(item | fields | payload, form, context)
    if said is None or not _same_values(said, event):
        # The event was corrected since it was imported: what its columns say wins.
        payload = {k: v for k, v in payload.items() if k not in fields}
        said = _said(item | fields | payload, form, context)
    item |= fields | payload
    missing = {
        name: event[name]
        for name in VALUES
        if said is None or not _same(name, said[name], event[name])
    }
    if missing:
        item[EXTENSION] = missing
    return item


def split_note(note: str | None) -> tuple[str | None, dict[str, Any]]:
    """Return (remark, payload) of an event's note: its text, and the ADE fields it keeps."""
    if note is None:
        return None, {}
    if note.startswith(PAYLOAD_PREFIX):
        head, tail = "", note[len(PAYLOAD_PREFIX) :]
    else:
        cut = note.rfind("\n" + PAYLOAD_PREFIX)
        if cut < 0:
            return note, {}
        head, tail = note[:cut], note[cut + 1 + len(PAYLOAD_PREFIX) :]
    try:
        payload = json.loads(tail)
    except ValueError:
        return note, {}
    if not isinstance(payload, dict):
        return note, {}
    return head or None, payload


def key_source(event_key: str | None) -> tuple[str, str] | None:
    """Return (meta.source, meta.sourceId) of an event imported from ADE, else None."""
    if event_key is None or not event_key.startswith(KEY_PREFIX) or " " not in event_key:
        return None
    source, source_id = event_key[len(KEY_PREFIX) :].split(" ", 1)
    return source, source_id


def _key(meta: Mapping[str, Any], item_id: str | None) -> str | None:
    source, source_id = meta.get("source"), meta.get("sourceId") or item_id
    if not source or not source_id:
        return None
    if any(c.isspace() for c in source):
        raise Unmappable(".meta.source", f"{source!r}: a URI or reverse DNS name, no spaces")
    key = f"{KEY_PREFIX}{source} {source_id}"
    if len(key) > MAX_EVENT_KEY_CHARS:
        raise Unmappable(
            ".meta",
            f"source and sourceId are {len(key) - 5} characters together; herdrecord keys "
            f"events by them, up to {MAX_EVENT_KEY_CHARS - 5}",
        )
    return key


def _note(remark: str | None, payload: Mapping[str, Any]) -> str | None:
    lines = [remark.strip()] if remark and remark.strip() else []
    if payload:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        lines.append(PAYLOAD_PREFIX + text)
    note = "\n".join(lines)
    if len(note) > MAX_NOTE_CHARS:
        raise Unmappable(
            "",
            f"its remark and the fields herdrecord keeps as they are take {len(note)} "
            f"characters, above the {MAX_NOTE_CHARS} of an event's note",
        )
    return note or None


def _said(item: Mapping[str, Any], form: Form, context: Context) -> dict[str, Any] | None:
    try:
        return form_columns(item, form, context)
    except (Unmappable, KeyError, TypeError, ValueError):
        return None


def _same_values(said: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    return said["kind"] == event["kind"] and all(
        _same(name, said[name], event[name]) for name in VALUES
    )


def _same(name: str, said: Any, kept: Any) -> bool:
    if name == "unit" and said is None:
        return kept is None or kept in FIXED_UNITS  # a form leaves out the kind's own unit
    if said is None or kept is None:
        return said is None and kept is None
    if name == "withdrawal_days":  # the column keeps float32
        return bool(np.float32(said) == np.float32(kept))
    return bool(said == kept)
