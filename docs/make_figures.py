"""Draw the documentation's figures from a simulated barn: `docs/timeline.png`.

Run from the repository root: `.venv/bin/python docs/make_figures.py [--record DIR]`.

A seeded barn (24 pigs, 3 pens, 45 days) is ingested and linked; the simulator's own records
(scale weights, lameness scores, diagnoses, treatments, moves, sales) are stored as events
under the record's animal ids. The animal with a treatment and the most flagged days is
named and drawn through the same code as `herdrecord timeline PATH ANIMAL --plot FILE`.
It takes about two minutes, most of it ingesting three million observation rows.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from herdrecord.config import Settings
from herdrecord.days.derive import read_days
from herdrecord.events.rules import EVENT_KINDS, EventInput, parse_event
from herdrecord.events.store import add_events
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.review import rename
from herdrecord.linking.run import link_pending
from herdrecord.lookup.timeline import animal_timeline, plot_animal_timeline
from herdrecord.simulation import Simulation, SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record, create_record

DOCS = Path(__file__).resolve().parent
# Seed 2 gives a grower a severity-3 lameness from 21 to 26 September, scored, diagnosed
# and treated, after three sound weeks: enough baseline for the anomaly flags to show.
CONFIG = SimulationConfig(animals=24, pens=3, days=45, seed=2, keyframes=False)
NAME = "Bramble"


def main() -> None:
    """Build the barn's record and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="keep the record here (a new directory)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.record or Path(scratch) / "herd"
        sim = simulate(CONFIG)
        print(f"simulated {len(sim.batches)} batches in {time.perf_counter() - started:.0f} s")
        record = create_record(str(path), Settings(), farm_id=CONFIG.farm_id)
        # All days in one ingest and one linking run: 44 linking runs fewer than the edge's
        # daily rhythm would take.
        ingest(
            record, (parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in sim.batches)
        )
        link_pending(record)
        stored = _record_truth_events(record, sim)
        print(f"ingested, linked and stored {stored} events: {time.perf_counter() - started:.0f} s")
        animal = _episode_animal(record)
        rename(record, animal, NAME)
        view = animal_timeline(record, animal)
        figure = plot_animal_timeline(view, DOCS / "timeline.png")
        print(f"{animal} ({NAME}): {figure.relative_to(DOCS.parent)}")
        if args.record:
            print(f"record kept at {path}: herdrecord timeline {path} {animal}")
    print(f"done in {time.perf_counter() - started:.0f} s")


def _record_truth_events(record: Record, sim: Simulation) -> int:
    """Store the simulator's events under each true animal's main record animal (the one
    holding most of its tracked time), through the ordinary validated path."""
    con = duckdb.connect()
    con.register("links", current_links(record))
    con.register("truth", sim.truth_tracklets)
    main_animal = dict(
        con.sql(
            "SELECT t, arg_max(animal_id, s) FROM (SELECT l.animal_id, truth.animal_id AS t, "
            'sum(epoch(truth."end") - epoch(truth.start)) AS s FROM truth JOIN links l '
            "USING (device_id, track_id) WHERE l.animal_id IS NOT NULL GROUP BY ALL) GROUP BY 1"
        ).fetchall()
    )
    events: list[EventInput] = []
    for event in sim.truth_events.to_pylist():
        # `arrival` is the simulator's own kind; a record keeps the ones it knows.
        if event["kind"] not in EVENT_KINDS or event["animal_id"] not in main_animal:
            continue
        fields = {k: v for k, v in event.items() if v not in (None, "")}
        if event["kind"] in ("death", "sale"):
            fields.pop("value", None)  # the simulator notes the weight; an event does not
        fields["animal_id"] = main_animal[event["animal_id"]]
        fields.setdefault("author", "sim")
        events.append(parse_event(fields))
    return len(add_events(record, events).event_ids)


def _episode_animal(record: Record) -> str:
    """Return the treated animal with the most flagged days among those seen every day and
    neither dead nor sold (a departed animal's id can be taken over by a newcomer's tracks)."""
    con = duckdb.connect()
    con.register("d", read_days(record).select(["animal_id", "anomalies"]))
    con.register("e", record.table("events").to_lance().to_table(columns=["animal_id", "kind"]))
    rows = con.sql(
        "SELECT animal_id, count(*) FILTER (len(anomalies) > 0) AS flagged FROM d "
        "WHERE animal_id IN (SELECT animal_id FROM e WHERE kind = 'treatment') "
        "AND animal_id NOT IN (SELECT animal_id FROM e WHERE kind IN ('death', 'sale')) "
        "GROUP BY 1 HAVING count(*) = $days ORDER BY flagged DESC, animal_id LIMIT 1",
        params={"days": CONFIG.days},
    ).fetchall()
    if not rows or rows[0][1] == 0:
        raise SystemExit("no treated animal with flagged days: choose another seed")
    return str(rows[0][0])


if __name__ == "__main__":
    main()
