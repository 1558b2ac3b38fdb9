"""Departures by date: a sale recorded late re-links the days after it, and the sold animal's
id goes to no newcomer; the days before it keep the animal."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conftest import service_settings
from herdrecord.events.rules import EventInput
from herdrecord.events.store import add_events
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.run import link_pending
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.linktable import current_links, relinks_owed
from herdrecord.store.record import Record, create_record

SIM = SimulationConfig(
    animals=8,
    pens=2,
    days=6,
    seed=11,
    arrival_rate_per_day=0.0,
    move_rate_per_day=0.0,
    death_rate_per_day=0.0,
    obs_interval_s=120.0,
    keyframes=False,
)
SOLD_AFTER = "2026-09-03"  # the sold pig's last day; a newcomer comes into its pen the next


def _truth(table: pa.Table) -> dict[tuple[str, str], str]:
    rows = table.select(["device_id", "track_id", "animal_id"]).to_pylist()
    return {(r["device_id"], r["track_id"]): str(r["animal_id"]) for r in rows}


def _barn() -> tuple[list[dict[str, Any]], set[tuple[str, str]], set[tuple[str, str]]]:
    """Return the barn's batches where one pig of pen-1 is gone after SOLD_AFTER and a pig the
    record has never seen (from another simulated farm) is tracked in its place; the sold
    pig's tracklets and the newcomer's."""
    home, other = simulate(SIM), simulate(dataclasses.replace(SIM, seed=12))
    home_truth, other_truth = _truth(home.truth_tracklets), _truth(other.truth_tracklets)
    sold = next(a for (d, _), a in sorted(home_truth.items()) if d == "dev-01")
    stranger = next(a for (d, _), a in sorted(other_truth.items()) if d == "dev-01")
    theirs = {
        b["batch_id"]: [
            t
            for t in b["tracklets"]
            if other_truth[(b["device_id"], t["track_id"])] == stranger
            and t["start"][:10] > SOLD_AFTER
        ]
        for b in other.batches
        if b["device_id"] == "dev-01"
    }
    newcomer: set[tuple[str, str]] = set()
    sold_tracks = {k for k, a in home_truth.items() if a == sold}
    batches = []
    for batch in home.batches:
        kept = [
            t
            for t in batch["tracklets"]
            if not (
                home_truth[(batch["device_id"], t["track_id"])] == sold
                and t["start"][:10] > SOLD_AFTER
            )
        ]
        for t in theirs.get(batch["batch_id"], []):
            kept.append({**t, "track_id": f"x-{t['track_id']}", "tag_id": None})
            newcomer.add(("dev-01", f"x-{t['track_id']}"))
        batches.append({**batch, "tracklets": sorted(kept, key=lambda t: t["start"])})
    return batches, sold_tracks, newcomer


def _day(batch: dict[str, Any]) -> str:
    return str(batch["batch_id"]).split("/")[1][:10]


def _links(record: Record) -> dict[tuple[str, str], str | None]:
    rows = current_links(record).select(["device_id", "track_id", "animal_id"]).to_pylist()
    return {(r["device_id"], r["track_id"]): r["animal_id"] for r in rows}


def _days(record: Record) -> dict[tuple[str, str], str]:
    rows = record.read_visible("tracklets", ["device_id", "track_id", "start"]).to_pylist()
    return {
        (r["device_id"], r["track_id"]): r["start"].astimezone(UTC).date().isoformat() for r in rows
    }


@pytest.mark.parametrize("when", ["late", "on time"])
def test_a_sale_recorded_late_frees_no_id_for_a_newcomer(tmp_path: Path, when: str) -> None:
    batches, sold_tracks, newcomer = _barn()
    record = create_record(str(tmp_path / "herd"), service_settings(tmp_path))
    candidates = [parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in batches]
    early = [c for c, b in zip(candidates, batches, strict=True) if _day(b) <= SOLD_AFTER]
    ingest(record, early)
    link_pending(record)
    before = _links(record)
    sold_id = Counter(before[k] for k in sold_tracks if k in before).most_common(1)[0][0]
    assert sold_id is not None
    sale = EventInput(
        animal_id=sold_id, kind="sale", at=datetime(2026, 9, 3, 22, 0, tzinfo=UTC), author="farm"
    )
    if when == "on time":
        add_events(record, [sale])
    ingest(record, [c for c, b in zip(candidates, batches, strict=True) if _day(b) > SOLD_AFTER])
    link_pending(record)
    if when == "late":
        add_events(record, [sale])
        assert relinks_owed(record), "the sale is noted as owing its pen's later days"
        link_pending(record)
        assert not relinks_owed(record)
    after = _links(record)
    days = _days(record)
    # The days up to the sale keep the sold pig; none after it is linked to it.
    assert any(a == sold_id and days[k] <= SOLD_AFTER for k, a in after.items())
    assert not [k for k, a in after.items() if a == sold_id and days[k] > SOLD_AFTER]
    # The newcomer is one animal of its own: most of its tracked time under one new id.
    ids = {after[k] for k in newcomer}
    earlier_ids = {a for a in before.values() if a is not None}
    main = max(ids - {None}, key=lambda a: sum(1 for k in newcomer if after[k] == a))
    assert main not in earlier_ids
    assert sum(1 for k in newcomer if after[k] == main) >= 0.8 * len(newcomer)
