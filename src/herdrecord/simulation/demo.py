"""The demo: a small simulated herd, written as edge batches beside a fresh record."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.simulation import SimulationConfig, simulate, write_simulation
from herdrecord.store.record import Record, create_record, is_record

DEMO_MARKER = ".herdrecord-demo"


@dataclass(frozen=True)
class PreparedDemo:
    """A demo directory: the simulated batches, the ground truth and an empty record."""

    record: Record
    batches_dir: Path
    truth_dir: Path
    batches: int


def prepare_demo(
    path: Path, *, animals: int, days: int, seed: int, settings: Settings
) -> PreparedDemo:
    """Simulate a herd into `path/edge` and create an empty record at `path/record`.

    A directory made by an earlier demo is replaced; any other non-empty directory is refused.
    """
    path = path.expanduser().resolve()
    if path.exists() and any(path.iterdir()):
        if not (path / DEMO_MARKER).exists():
            raise InvalidInput(f"{path} exists and was not made by the demo; choose another path")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / DEMO_MARKER).write_text("made by `herdrecord demo`; safe to delete\n")
    # The herd's days run up to yesterday (UTC), as a barn's record would on the day it is read.
    start = datetime.now(UTC).date() - timedelta(days=days)
    # A barn as the field reports them, not the simulator's easy default: the tracker loses
    # animals for ~15 s (long tail), the edge sends one embedding sample per tracklet and a
    # frozen embedding is a weak identifier, so the review queue has real close calls.
    config = SimulationConfig(
        animals=animals,
        pens=max(1, animals // 6),
        days=days,
        seed=seed,
        start=start,
        reacquire_gap_median_s=15.0,
        samples_per_tracklet_max=1,
        identity_norm=0.2,
    )
    simulation = simulate(config)
    files = write_simulation(simulation, path / "edge")
    record_path = path / "record"
    if is_record(record_path):
        raise InvalidInput(f"{record_path} already holds a record")
    record = create_record(str(record_path), settings, farm_id=config.farm_id)
    return PreparedDemo(
        record=record,
        batches_dir=files.batches_dir,
        truth_dir=files.truth_dir,
        batches=len(simulation.batches),
    )


def write_farm_events(truth_dir: Path, record: Record, out: Path) -> tuple[Path, int]:
    """Write the simulator's health and production events as the farm's management software
    would export them (a CSV keyed by ear tag) for the animals whose tag the record has read;
    return the file and how many events were left out for tags not seen."""
    events = pq.read_table(truth_dir / "events.parquet")
    animals = pq.read_table(truth_dir / "animals.parquet")
    tag_of = dict(
        zip(
            animals.column("animal_id").to_pylist(),
            animals.column("tag_id").to_pylist(),
            strict=True,
        )
    )
    known = set(record.dataset("animals").to_table(columns=["tag_id"]).column("tag_id").to_pylist())
    rows, left_out = [], 0
    for event in events.to_pylist():
        row = _farm_row(event, tag_of[event["animal_id"]])
        if row is None:
            continue
        if row["tag_id"] not in known:
            left_out += 1
            continue
        rows.append(row)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(FARM_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return out, left_out


FARM_COLUMNS = ("tag_id", "kind", "at", "value", "scale", "code", "note", "author", "result")


def _farm_row(event: dict[str, object], tag: str) -> dict[str, object] | None:
    """Return one simulator event as a farm CSV row (None for kinds a farm does not record)."""
    kind = str(event["kind"])
    if kind == "arrival":
        return None  # the animal's first day in the record is its arrival
    at = event["at"]
    assert isinstance(at, datetime)
    row: dict[str, object] = {
        "tag_id": tag,
        "kind": kind,
        "at": at.isoformat(),
        "value": event["value"],
        "scale": event["scale"],
        "code": event["code"],
        "note": event["note"],
        "author": event["author"] or "farm",
        "result": None,
    }
    if kind == "death":
        row["value"] = None  # the simulator's carcass weight; the event records the cause
    elif kind == "pregnancy_check":
        row.update(
            value=None, code=None, result="positive" if event["code"] == "POS" else "negative"
        )
    elif kind == "farrowing":
        row.update(result=event["note"], note=None)
    return row
