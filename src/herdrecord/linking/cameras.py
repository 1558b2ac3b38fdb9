"""The camera registry: which cameras of a pen have overlapping views.

Two cameras whose views overlap see the same animal twice at once, so "seen together means
different animals" must not hold between them. The registry is a barn fact a farm enters
when it installs cameras; linking reads it (`twins.py`) and learns the rest from the data.
It lives in the record's metadata as a sorted list of [pen_id, camera_id, camera_id], the
two cameras of a pair in sorted order.
"""

from __future__ import annotations

from herdrecord.errors import InvalidInput
from herdrecord.store.record import Record

META_CAMERA_OVERLAPS = "camera_overlaps"


def camera_overlaps(record: Record) -> list[tuple[str, str, str]]:
    """Return the registered overlapping pairs, (pen_id, camera_id, camera_id), sorted."""
    stored = record.metadata.get(META_CAMERA_OVERLAPS) or []
    return sorted((str(p), str(a), str(b)) for p, a, b in stored)


def overlaps_by_pen(record: Record) -> dict[str, set[frozenset[str]]]:
    """Return, per pen, the camera pairs whose views overlap."""
    out: dict[str, set[frozenset[str]]] = {}
    for pen_id, a, b in camera_overlaps(record):
        out.setdefault(pen_id, set()).add(frozenset((a, b)))
    return out


def set_overlap(
    record: Record, pen_id: str, cam_a: str, cam_b: str, overlapping: bool = True
) -> bool:
    """Register (or, with overlapping=False, remove) that two cameras of a pen overlap.

    Returns whether the registry changed. Links already made keep their decisions until the
    pen-days are linked again (`herdrecord link REC --all`).
    """
    entry = _entry(pen_id, cam_a, cam_b)
    with record.writer():
        current = set(camera_overlaps(record))
        updated = current | {entry} if overlapping else current - {entry}
        if updated == current:
            return False
        record.set_metadata(META_CAMERA_OVERLAPS, [list(e) for e in sorted(updated)])
        return True


def _entry(pen_id: str, cam_a: str, cam_b: str) -> tuple[str, str, str]:
    """Return the registry's entry for a pair, refusing ids that cannot name one."""
    pen_id, cam_a, cam_b = (str(v).strip() for v in (pen_id, cam_a, cam_b))
    if not pen_id:
        raise InvalidInput("the pen id is empty")
    if not cam_a or not cam_b:
        raise InvalidInput("a camera id is empty")
    if cam_a == cam_b:
        raise InvalidInput(f"a camera pair needs two different cameras, got {cam_a!r} twice")
    first, second = sorted((cam_a, cam_b))
    return pen_id, first, second
