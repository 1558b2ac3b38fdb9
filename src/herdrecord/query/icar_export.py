"""Export as ICAR ADE collections: the events in force, the days' anomaly flags as attention
events, and the cameras' gait measure as automated locomotion scores.

An export directory holds one collection file per ADE resource that has any event, named
after its collection schema:

    icarDiagnosisEventCollection.json        diagnoses (and health statuses imported)
    icarTreatmentEventCollection.json        treatments, with their withdrawal end dates
    icarConformationScoreEventCollection.json
        lameness scores: Locomotion, method Manual, the scale as traitLabel
        (org.herdrecord.lameness-scale, 0-3 or 1-5); and each day's mean gait indicator:
        Locomotion, method Automated, traitLabel org.herdrecord.gait
    icarAttentionEventCollection.json        one per flagged animal-day
    ... weight, heat, insemination, pregnancy check, parturition, abortion, arrival (a move
    to a pen), departure (a sale), death, birth

Notes and weanings have no ADE resource and are left out (counted). `herdrecord event
import` reads the directory back; it leaves out the attention events and gait measures, which
a record derives from its own days.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from herdrecord._version import __version__
from herdrecord.events.ade.forms import GAIT_SCHEME, Context, format_time
from herdrecord.events.ade.mapping import ANIMAL_SCHEME, SOURCE, ade_event
from herdrecord.events.store import current_events
from herdrecord.query.export import ExportFilters, new_directory, selected_animals, staged
from herdrecord.store.record import Record

DEVICE_SCHEME = "org.herdrecord.device"
# A day's anomaly flag (herdrecord.days.anomalies) -> ADE attention category and cause.
ATTENTION_CAUSES = {
    "lying_up": ("Behaviour", "LyingTooLong"),
    "activity_down": ("Behaviour", "Inactivity"),
    "eating_down": ("Behaviour", "EatingLess"),
    "walking_speed_down": ("Health", "Walking"),
    "gait_up": ("Health", "Lameness"),
}
# Deviation (sigma) -> priority. Flags are raised at 2.5 sigma; each step above it is rarer
# among healthy days by an order of magnitude or more.
PRIORITIES = ((4.0, "Critical"), (3.0, "Urgent"), (0.0, "Normal"))


@dataclass(frozen=True)
class AdeExport:
    """What an ADE export wrote."""

    out_dir: Path
    files: dict[str, int]  # file name -> ADE events in it
    left_out: dict[str, int]  # kind -> events ADE has no resource for (notes, weanings)

    @property
    def events(self) -> int:
        """Return the ADE events written, in all files."""
        return sum(self.files.values())


def export_icar_ade(
    record: Record, out_dir: Path, filters: ExportFilters | None = None
) -> AdeExport:
    """Write the events in force, the attention events and the gait measures as ADE
    collections under the new or empty `out_dir`."""
    filters = filters or ExportFilters()
    out_dir = new_directory(out_dir)
    selected = selected_animals(record, filters)
    contexts = _contexts(record)
    collections: dict[str, list[dict[str, Any]]] = {}
    left_out: Counter[str] = Counter()
    for event in _events(record, filters, selected):
        context = contexts.get(event["animal_id"], Context(None, None))
        if event["kind"] == "farrowing":
            context = Context("pig", context.pen_id)
        item = ade_event(event, context)
        if item is None:
            left_out[event["kind"]] += 1
            continue
        collections.setdefault(item["resourceType"], []).append(item)
    for item in _day_items(record, filters, selected):
        collections.setdefault(item["resourceType"], []).append(item)
    provenance = {
        "herdrecord_version": __version__,
        "farm_id": record.farm_id,
        "exported_at": format_time(datetime.now(UTC).replace(microsecond=0)),
        "filters": filters.to_json(),
    }
    files: dict[str, int] = {}
    with staged(out_dir) as staging:
        for resource_type, members in sorted(collections.items()):
            members.sort(key=lambda item: (item["eventDateTime"], item["id"]))
            name = f"{resource_type}Collection.json"
            document = {
                "view": {"totalItems": len(members), "totalPages": 1, "currentPage": 1},
                "member": members,
                "herdrecord": provenance,
            }
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
            (staging / name).write_text(text, encoding="utf-8")
            files[name] = len(members)
    return AdeExport(out_dir, files, dict(sorted(left_out.items())))


def export_icar_ade_zip(
    record: Record, work_dir: Path, filters: ExportFilters | None = None
) -> Path:
    """Export as ADE into `work_dir` and pack the files into one zip there; return its path."""
    result = export_icar_ade(record, work_dir / "icar-ade", filters)
    archive = work_dir / f"herdrecord-icar-ade-{record.farm_id}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for name in sorted(result.files):
            out.write(result.out_dir / name, name)
    return archive


def _contexts(record: Record) -> dict[str, Context]:
    columns = ["animal_id", "species", "pen_id"]
    animals = record.dataset("animals").to_table(columns=columns)
    return {a["animal_id"]: Context(a["species"], a["pen_id"]) for a in animals.to_pylist()}


def _events(
    record: Record, filters: ExportFilters, selected: tuple[str, ...] | None
) -> list[dict[str, Any]]:
    start = _day_start(filters.first_day) if filters.first_day else None
    end = _day_start(filters.last_day + timedelta(days=1)) if filters.last_day else None
    events = current_events(record, start=start, end=end)
    if selected is not None:
        events = events.filter(pc.is_in(events.column("animal_id"), pa.array(selected)))
    rows: list[dict[str, Any]] = events.to_pylist()
    return rows


def _day_items(
    record: Record, filters: ExportFilters, selected: tuple[str, ...] | None
) -> list[dict[str, Any]]:
    """Return the attention events and gait measures of the animal-days."""
    columns = ["animal_id", "day", "anomalies", "anomaly_z", "gait_mean", "gait_n", "keyframes"]
    days = record.dataset("days").to_table(columns=[*columns, "derived_at"])
    if filters.first_day:
        days = days.filter(pc.field("day") >= filters.first_day)
    if filters.last_day:
        days = days.filter(pc.field("day") <= filters.last_day)
    if selected is not None:
        days = days.filter(pc.is_in(days.column("animal_id"), pa.array(selected)))
    items = []
    for day in days.to_pylist():
        if day["anomalies"]:
            items.append(attention_event(day))
        if day["gait_mean"] is not None:
            items.append(gait_score(day))
    return items


def attention_event(day: dict[str, Any]) -> dict[str, Any]:
    """Return a flagged animal-day (a row of `days`) as an ADE attention event."""
    found = [ATTENTION_CAUSES.get(flag, ("Behaviour", "Other")) for flag in day["anomalies"]]
    causes = sorted({cause for _, cause in found})
    z = day["anomaly_z"]
    item = _day_item(day, "attention", "icarAttentionEvent")
    item |= {
        "alertEndDateTime": format_time(_day_start(day["day"] + timedelta(days=1))),
        "category": "Health" if any(c == "Health" for c, _ in found) else "Behaviour",
        "causes": causes,
        "priority": priority(z),
        "remark": "herdrecord flags: " + ", ".join(day["anomalies"]),
    }
    if z is not None:
        item["deviceAttentionScore"] = round(float(z), 2)
    return item


def gait_score(day: dict[str, Any]) -> dict[str, Any]:
    """Return an animal-day's mean gait indicator as an automated ADE locomotion score."""
    item = _day_item(day, "gait", "icarConformationScoreEvent")
    item |= {
        "traitScored": "Locomotion",
        "score": round(float(day["gait_mean"]), 4),
        "method": "Automated",
        "traitLabel": {"scheme": GAIT_SCHEME, "id": "gait_mean"},
        "remark": (f"mean edge gait indicator over {day['gait_n']} observations (higher = worse)"),
    }
    return item


def priority(z: float | None) -> str:
    """Return the ADE priority of a day's largest deviation, in sigma (None: unknown)."""
    if z is None:
        return "Informational"
    return next(name for floor, name in PRIORITIES if z >= floor)


def _day_item(day: dict[str, Any], what: str, resource_type: str) -> dict[str, Any]:
    source_id = f"{day['animal_id']}/{day['day'].isoformat()}/{what}"
    item: dict[str, Any] = {
        "resourceType": resource_type,
        "id": source_id,
        "meta": {
            "source": SOURCE,
            "sourceId": source_id,
            "modified": format_time(day["derived_at"]),
        },
        "animal": {"scheme": ANIMAL_SCHEME, "id": day["animal_id"]},
        "eventDateTime": format_time(_day_start(day["day"])),
    }
    devices = Counter(frame["device_id"] for frame in day["keyframes"] or [])
    if devices:
        device = devices.most_common(1)[0][0]
        item["device"] = {"identifier": {"scheme": DEVICE_SCHEME, "id": device}}
    return item


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)
