"""Benchmark the animal page for an animal with a year of days, measured in headless Chromium,
on a record of 1,000 animals with a year of days each.

The record: a small simulated barn ingested and linked for real (its keyframes are the
pictures every day points at), plus 1,000 animals in 50 pens with 365 generated days each
(365,000 rows of the `days` table, 3 keyframes a day, anomaly flags on ~2 % of days) and
their monthly scale weights and some lameness scores as events (recorded through the library,
so the weight calibration is real).

Side by side in one run, on the same record and the same animal and year:
  raw    the library read the page is built on, in process: `animal_timeline` for the year
         (days with estimated weights, events, calibration) and the link history;
  api    the same year's timeline JSON, fetched and parsed by the browser (`fetch`), as the
         service caches it (first fetch reported apart);
  page   the animal page for the year, opened in the browser: navigation start to the load
         event (HTML, CSS, script, both charts, the pictures in view); ratio page / raw;
  herd   the herd page with its 1,000 animals, the same way.
Each is loaded --loads times (first, cold load reported apart); median and p95.

Run: `.venv/bin/python benchmarks/pages.py [--animals 1000] [--days 365] [--loads 30]`.
Needs Debian's chromium (/usr/bin/chromium). Writes benchmarks/results/pages.json and the
table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from playwright.sync_api import Page, sync_playwright

from herdrecord.api.keys import add_key
from herdrecord.config import Settings
from herdrecord.events.rules import parse_event
from herdrecord.events.store import add_events
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.review import history
from herdrecord.linking.run import link_pending
from herdrecord.lookup.timeline import animal_timeline
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.compaction import compact_if_fragmented
from herdrecord.store.record import Record, create_record, open_record
from herdrecord.store.schema import animals_schema, days_schema

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from servers import CHROMIUM_ARGS, start_server, stop_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
LAST_DAY = date(2026, 11, 20)
CHUNK = 50_000  # days rows per append


def main() -> None:
    """Build the record, run the loads, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--pens", type=int, default=50)
    parser.add_argument("--loads", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herdrecord-pages-") as work:
        result = run(args.animals, args.days, args.pens, args.loads, Path(work))
    out = HERE / "results" / "pages.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    update_readme(result)
    print(json.dumps(result["summary"], indent=2))


def run(animals: int, days: int, pens: int, loads: int, work: Path) -> dict[str, Any]:
    started = time.monotonic()
    path = work / "herd"
    record = build_record(path, animals, days, pens)
    built_s = time.monotonic() - started
    print(f"record built in {built_s:.0f} s", flush=True)
    target = "B00001"
    start, end = LAST_DAY - timedelta(days=days - 1), LAST_DAY
    raw = [_raw_read(record, target, start, end) for _ in range(loads)]
    _, vet = add_key(record, "bench-vet", "vet", "bench")
    url, process = start_server(path, work / "serve.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/sign-in")
            page.fill("#key", vet)
            page.click("#sign-in")
            page.wait_for_url(f"{url}/herd")
            animal_url = f"{url}/animals/{target}?from={start}&to={end}"
            page_loads = [_load(page, animal_url) for _ in range(loads + 1)]
            shape = _shape(page)
            api_url = f"/v1/animals/{target}/timeline?from={start}&to={end}"
            api_loads = [_fetch(page, api_url, vet) for _ in range(loads + 1)]
            herd_loads = [_load(page, f"{url}/herd") for _ in range(loads + 1)]
            browser.close()
    finally:
        stop_server(process)

    def stats(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "median": round(statistics.median(ordered), 1),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
            "min": round(ordered[0], 1),
            "max": round(ordered[-1], 1),
        }

    page_ms = [m["load_ms"] for m in page_loads[1:]]
    summary = {
        "raw_ms": stats(raw),
        "api_ms": stats([m["ms"] for m in api_loads[1:]]),
        "api_first_ms": round(api_loads[0]["ms"], 1),
        "page_ms": stats(page_ms),
        "page_first_ms": round(page_loads[0]["load_ms"], 1),
        "page_html_ms": stats([m["html_ms"] for m in page_loads[1:]]),
        "herd_ms": stats([m["load_ms"] for m in herd_loads[1:]]),
        "herd_first_ms": round(herd_loads[0]["load_ms"], 1),
        "ratio_page_to_raw": round(statistics.median(page_ms) / statistics.median(raw), 2),
        "page_html_kb": round(page_loads[-1]["html_bytes"] / 1024, 1),
        "api_json_kb": round(api_loads[-1]["bytes"] / 1024, 1),
        "herd_html_kb": round(herd_loads[-1]["html_bytes"] / 1024, 1),
        **shape,
    }
    return {
        "benchmark": "pages",
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": len(__import__("os").sched_getaffinity(0)),
            "python": platform.python_version(),
        },
        "data": {
            "animals": animals,
            "days_per_animal": days,
            "pens": pens,
            "days_rows": animals * days,
            "animal": target,
            "period": [str(start), str(end)],
            "loads": loads,
            "record_built_s": round(built_s, 1),
        },
        "summary": summary,
    }


def _raw_read(record: Record, animal_id: str, start: date, end: date) -> float:
    began = time.perf_counter()
    timeline = animal_timeline(record, animal_id, start, end)
    history(record, animal_id)
    assert timeline.days.num_rows > 0
    return (time.perf_counter() - began) * 1000


def _load(page: Page, url: str) -> dict[str, float]:
    page.goto(url, wait_until="load")
    timing = page.evaluate(
        """() => { const n = performance.getEntriesByType('navigation')[0];
                   return {load: n.loadEventEnd - n.startTime,
                           html: n.responseEnd - n.startTime, bytes: n.encodedBodySize}; }"""
    )
    return {"load_ms": timing["load"], "html_ms": timing["html"], "html_bytes": timing["bytes"]}


def _fetch(page: Page, path: str, key: str) -> dict[str, float]:
    return dict(
        page.evaluate(
            """async ([path, key]) => {
                 const t0 = performance.now();
                 const r = await fetch(path, {headers: {Authorization: 'Bearer ' + key}});
                 const text = await r.text(); JSON.parse(text);
                 return {ms: performance.now() - t0, bytes: text.length};
               }""",
            [path, key],
        )
    )


def _shape(page: Page) -> dict[str, int]:
    """Return what the browser holds for the year: marks in each chart, pictures requested."""
    return dict(
        page.evaluate(
            """() => ({
                 growth_points: document.querySelector('svg[data-chart=growth] polyline')
                   .getAttribute('points').trim().split(/\\s+/).length,
                 budget_bars: new Set([...document.querySelectorAll(
                   'svg[data-chart=budget] rect.bar')].map(r => r.getAttribute('x'))).size,
                 budget_rects: document.querySelectorAll('svg[data-chart=budget] rect.bar')
                   .length,
                 strip_days: document.querySelectorAll('.strip .day').length,
                 images_loaded: performance.getEntriesByType('resource')
                   .filter(e => e.name.includes('/frames?')).length,
               })"""
        )
    )


def build_record(path: Path, animals: int, days: int, pens: int) -> Record:
    """Return a record holding a real simulated barn and `animals` generated animals with
    `days` days each."""
    settings = Settings(retention_enabled=False, lock_timeout_s=60.0)
    record = create_record(str(path), settings)
    simulation = simulate(SimulationConfig(animals=6, pens=1, days=1, seed=11))
    ingest(
        record, [parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in simulation.batches]
    )
    link_pending(record)
    refs = record.table("keyframes").to_lance().to_table(columns=["device_id", "track_id", "t"])
    rng = np.random.default_rng(5)
    ids = [f"B{i + 1:05d}" for i in range(animals)]
    pen_of = [f"pen-{i % pens + 1:02d}" for i in range(animals)]
    now = datetime.now(UTC)
    record.table("animals").add(
        pa.Table.from_pylist(
            [
                {
                    "animal_id": a,
                    "display_name": f"Sow {i + 1}" if i % 3 == 0 else None,
                    "tag_id": f"TAG-B{i + 1:05d}",
                    "species": "pig",
                    "sex": "female",
                    "birth_date": LAST_DAY - timedelta(days=days + 30),
                    "pen_id": pen_of[i],
                    "status": "active",
                    "merged_into": None,
                    "provisional": False,
                    "created_at": now,
                }
                for i, a in enumerate(ids)
            ],
            schema=animals_schema(),
        )
    )
    growth = 25.0 + 0.45 * np.arange(days)  # kg, day by day
    for first in range(0, animals, max(1, CHUNK // days)):
        chunk = ids[first : first + max(1, CHUNK // days)]
        record.table("days").add(_days(chunk, pen_of[first:], days, growth, refs, record, rng))
    compact_if_fragmented(record, force=True)
    events = []
    for i, a in enumerate(ids):
        for month in range(0, days, 30):
            day = LAST_DAY - timedelta(days=days - 1 - month)
            kg = float(growth[month] * (1 + 0.05 * np.sin(i)) + rng.normal(0, 1.0))
            at = datetime.combine(day, clock(9), UTC)
            events.append(
                parse_event(
                    {
                        "animal_id": a,
                        "kind": "weight",
                        "at": at,
                        "value": round(kg, 1),
                        "author": "scale",
                    }
                )
            )
        if i % 10 == 0:
            at = datetime.combine(LAST_DAY - timedelta(days=40), clock(8), UTC)
            events.append(
                parse_event(
                    {
                        "animal_id": a,
                        "kind": "lameness",
                        "at": at,
                        "value": 2,
                        "scale": "0-3",
                        "author": "stockperson",
                    }
                )
            )
    add_events(record, events)
    return open_record(str(path), settings)


def _days(
    ids: list[str],
    pens: list[str],
    days: int,
    growth: np.ndarray,
    refs: pa.Table,
    record: Record,
    rng: np.random.Generator,
) -> pa.Table:
    n = len(ids) * days
    day = np.tile(np.arange(days), len(ids))
    animal_index = np.repeat(np.arange(len(ids)), days)
    behaviours = list(record.behaviours)
    minutes = rng.gamma(2.0, 30.0, size=(n, len(behaviours))).astype(np.float32)
    minutes[:, 1] += 400  # lying sternal dominates
    observed = minutes.sum(axis=1)
    lying = minutes[:, :2].sum(axis=1)
    behaviour_min = pa.ListArray.from_arrays(
        pa.array(np.arange(0, n * len(behaviours) + 1, len(behaviours)), pa.int32()),
        pa.StructArray.from_arrays(
            [pa.array(behaviours * n), pa.array(minutes.ravel(), pa.float32())],
            names=["behaviour", "minutes"],
        ),
    )
    pick = (np.arange(n * 3) * 7919) % refs.num_rows
    keyframes = pa.ListArray.from_arrays(
        pa.array(np.arange(0, n * 3 + 1, 3), pa.int32()),
        pa.StructArray.from_arrays(
            [refs.column(c).take(pick).combine_chunks() for c in ("device_id", "track_id", "t")],
            names=["device_id", "track_id", "t"],
        ),
    )
    flagged = rng.random(n) < 0.02
    anomalies = pa.array([["lying_up"] if f else [] for f in flagged], pa.list_(pa.string()))
    weight = growth[day] * (1 + 0.05 * np.sin(animal_index)) + rng.normal(0, 0.8, n)
    columns = {
        "animal_id": pa.array(np.repeat(ids, days)),
        "day": pa.array([LAST_DAY - timedelta(days=days - 1 - int(d)) for d in day], pa.date32()),
        "pen_id": pa.array(np.repeat(pens[: len(ids)], days)),
        "n_tracklets": pa.array(rng.integers(10, 60, n), pa.int32()),
        "observed_min": pa.array(observed, pa.float32()),
        "behaviour_min": behaviour_min,
        "lying_min": pa.array(lying, pa.float32()),
        "lying_share": pa.array(lying / observed, pa.float32()),
        "eating_min": pa.array(minutes[:, 5], pa.float32()),
        "activity_index": pa.array(minutes[:, 4:].sum(axis=1) / observed, pa.float32()),
        "distance_px": pa.array(rng.gamma(2.0, 4000.0, n), pa.float32()),
        "mean_speed_px_s": pa.array(rng.gamma(2.0, 1.0, n), pa.float32()),
        "walking_speed_px_s": pa.array(rng.gamma(4.0, 5.0, n), pa.float32()),
        "lying_bouts": pa.array(rng.integers(4, 14, n), pa.int32()),
        "lying_bout_mean_min": pa.array(rng.gamma(5.0, 12.0, n), pa.float32()),
        "gait_mean": pa.array(rng.normal(0.3, 0.1, n), pa.float32()),
        "gait_n": pa.array(rng.integers(0, 40, n), pa.int32()),
        "area_px": pa.array(weight * 520.0 + rng.normal(0, 300, n), pa.float32()),
        "keyframes": keyframes,
        "link_confidence": pa.array(rng.uniform(0.4, 0.9, n), pa.float32()),
        "anomaly_z": pa.array(np.where(flagged, 2.8, 0.6), pa.float32()),
        "anomalies": anomalies,
        "derived_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
    }
    return pa.table(columns, schema=days_schema())


def update_readme(result: dict[str, Any]) -> None:
    """Replace the pages table in benchmarks/README.md with this run's figures."""
    s, d = result["summary"], result["data"]

    def row(name: str, key: str, first: str | None = None) -> str:
        m = s[key]
        cold = f"{s[first]}" if first else "–"
        return f"| {name} | {m['median']} | {m['p95']} | {cold} |"

    lines = [
        "<!-- pages:start -->",
        f"{d['animals']:,} animals × {d['days_per_animal']} days ({d['days_rows']:,} rows of "
        f"`days`), 50 pens; animal {d['animal']}, period {d['period'][0]} to {d['period'][1]}; "
        f"{d['loads']} loads each after a first; {result['when']}, "
        f"{result['machine']['cpus']} CPUs (browser and server share them).",
        "",
        "| what | median ms | p95 ms | first load ms |",
        "|---|---:|---:|---:|",
        row("raw: `animal_timeline` + link history, in process", "raw_ms"),
        row("API: timeline JSON fetched by the browser", "api_ms", "api_first_ms"),
        row("**animal page, a year: to the load event**", "page_ms", "page_first_ms"),
        row("animal page: its HTML alone", "page_html_ms"),
        row(f"herd page, {d['animals']:,} animals", "herd_ms", "herd_first_ms"),
        "",
        f"Ratio animal page / raw read: **{s['ratio_page_to_raw']}**. What the browser holds "
        f"for the year: HTML {s['page_html_kb']} KB (the API's JSON of the same year: "
        f"{s['api_json_kb']} KB), {s['growth_points']} points in the growth line, "
        f"{s['budget_bars']} bars ({s['budget_rects']} coloured segments) in the time "
        f"budget, {s['strip_days']} days in the picture strip, {s['images_loaded']} pictures "
        "requested at load; herd page HTML "
        f"{s['herd_html_kb']} KB.",
        "<!-- pages:end -->",
    ]
    readme = HERE / "README.md"
    text = readme.read_text()
    if "<!-- pages:start -->" not in text:
        text += "\n<!-- pages:start -->\n<!-- pages:end -->\n"
    head, rest = text.split("<!-- pages:start -->", 1)
    tail = rest.split("<!-- pages:end -->", 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
