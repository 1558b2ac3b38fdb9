"""Benchmark linking: identity accuracy over a stress matrix of barns, and speed on a big day.

Accuracy: each cell of `CELLS` is a simulated barn (`BASE` plus the cell's overrides: long
re-acquisition gaps, one sample per tracklet, weak identity, strong posture, 40 pigs a pen,
lying clumps, strong drift, two cameras with overlapping views, tracker identity
switches, and mixes). The record sees only the edge batches: nothing of the cell's
parameters reaches the linker. Side by side on the same descriptors (see
`linking_baselines.py`):
  herdrecord  bulk ingest + link_pending;
  floor       per-tracklet nearest neighbour, no constraints;
  oracle      per-tracklet nearest true same-day centroid (truth groups the day);
  ceiling     perfect within-day grouping, then a Hungarian match across days.
Per cell: IDF1 weighted by tracked seconds, animals found (identities with a link) vs true
animals seen, the share of tracked time left unknown, the calibration of the links'
`confidence` column where the links table has one (ECE over 10 bins, weighted by seconds,
and the reliability table; null without it), and the share of tracklets the tracker
switched inside.

Speed (`--speed`): a 1,000-animal barn's last day is linked against the pool built on its
earlier days, and timed against a raw FAISS search of the same day's descriptors against
the same pool, in the same run. Without `--speed` the last speed result is kept.

Run: `.venv/bin/python benchmarks/linking.py [--cells default,gaps-60s] [--days 14]
[--quick] [--workers 2] [--speed]`. Writes benchmarks/results/linking.json and the table in
benchmarks/README.md (a subset of cells updates only those cells).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from herdrecord.config import Settings
from herdrecord.contract.parquet import bulk_table_from_json
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import Candidate, read_file
from herdrecord.linking.cameras import set_overlap
from herdrecord.linking.run import link_pending
from herdrecord.linking.scoring import idf1
from herdrecord.linking.tracklets import TrackletData, load_tracklets
from herdrecord.simulation import Simulation, SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record, create_record
from linking_baselines import (
    calibration,
    centred,
    identity_mapping,
    nearest_neighbour_floor,
    nearest_true_day_centroid,
    perfect_grouping_ceiling,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "linking.json"
QUICK_DAYS = 4
FLOOR_THRESHOLD = 0.3  # the floor's new-identity cut-off when the linker reports none

# The default cell: 3 pens of 9 grow-finish pigs over 14 days (with the simulator's
# arrivals, moves, sales and deaths), a tracker that re-acquires after ~15 s (long tail),
# up to 3 embedding samples per tracklet, identity at which a single tracklet's look finds
# its animal among the day's centroids ~0.88 of the time (the per-tracklet oracle).
BASE: dict[str, Any] = {
    "animals": 27,
    "pens": 3,
    "days": 14,
    "seed": 17,
    "keyframes": False,
    "obs_interval_s": 60.0,
    "reacquire_gap_median_s": 15.0,
    "samples_per_tracklet_max": 3,
    "identity_norm": 0.31,
}

# Each condition at its hard end, then mixes. Overrides of BASE, by cell name.
CELLS: dict[str, dict[str, Any]] = {
    "default": {},
    "gaps-60s": {"reacquire_gap_median_s": 60.0},
    "one-sample": {"samples_per_tracklet_max": 1},
    "weak-identity": {"identity_norm": 0.255},  # per-tracklet oracle ~0.75
    "strong-posture": {"posture_norm": 1.0},  # per-tracklet oracle ~0.64
    "dense-40": {"animals": 120},  # 40 pigs a pen
    "clumps": {"clump_share": 0.8},
    "strong-drift": {"drift_norm": 0.6, "common_drift_norm": 0.6, "drift_walk_norm": 0.4},
    "overlap-2cam": {"cameras_per_pen": 2, "camera_overlap_share": 0.3},
    "switches-4pc": {"identity_switch_share": 0.04},
    "gaps+lying+clumps": {
        "reacquire_gap_median_s": 40.0,
        "reacquire_lying_factor": 2.0,
        "clump_share": 0.6,
    },
    "weak+one-sample+gaps": {
        "identity_norm": 0.28,
        "samples_per_tracklet_max": 1,
        "reacquire_gap_median_s": 40.0,
    },
    "barn-like": {
        "reacquire_gap_median_s": 30.0,
        "reacquire_lying_factor": 2.0,
        "samples_per_tracklet_max": 2,
        "identity_norm": 0.28,
        "posture_norm": 0.8,
        "clump_share": 0.5,
        "drift_norm": 0.4,
        "drift_walk_norm": 0.2,
        "cameras_per_pen": 2,
        "camera_overlap_share": 0.15,
        "identity_switch_share": 0.02,
    },
}


def cell_config(name: str, days: int | None) -> SimulationConfig:
    """Return the simulation config of a cell (with `days` when given)."""
    values = {**BASE, **CELLS[name]}
    if days is not None:
        values["days"] = days
    return SimulationConfig(**values)


def main() -> None:
    """Run the chosen cells (and speed, if asked) and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cell names")
    parser.add_argument("--days", type=int, default=None, help="days per cell (default 14)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DAYS} days: a smoke run")
    parser.add_argument("--workers", type=int, default=1, help="cells run at once")
    parser.add_argument("--speed", action="store_true", help="also run the speed part")
    parser.add_argument("--speed-animals", type=int, default=1000)
    args = parser.parse_args()
    names = [n for n in args.cells.split(",") if n]
    unknown = [n for n in names if n not in CELLS]
    if unknown:
        parser.error(f"unknown cells {unknown}; known: {', '.join(CELLS)}")
    days = QUICK_DAYS if args.quick else args.days
    started = time.perf_counter()
    cells = run_cells(names, days, args.workers)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    speed = previous.get("speed")
    if speed and "when" not in speed:
        speed = {**speed, "when": previous.get("when")}
    if args.speed:
        work = Path(tempfile.mkdtemp(prefix="herdrecord-linking-speed-"))
        try:
            speed = run_speed(args.speed_animals, 21, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    kept = previous.get("matrix", {}).get("cells", {}) if names != list(CELLS) else {}
    merged = {n: kept[n] for n in CELLS if n in kept and n not in cells}
    merged.update(cells)
    result: dict[str, Any] = {
        "benchmark": "linking",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "code": code_label(),
        "matrix": {
            "base": BASE,
            "overrides": CELLS,
            "cells": {n: merged[n] for n in CELLS if n in merged},
            "seconds": round(time.perf_counter() - started, 1),
        },
        "speed": speed,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    update_readme(result)
    print(matrix_table(result["matrix"]["cells"]))


def code_label() -> str | None:
    """Return which herdrecord ran: HERDRECORD_CODE_LABEL, else the git commit of the tree
    (with "+changes" when src/ differs from it), else None."""
    if os.environ.get("HERDRECORD_CODE_LABEL"):
        return os.environ["HERDRECORD_CODE_LABEL"]
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(HERE.parent), "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if changed else "")


def run_cells(names: list[str], days: int | None, workers: int) -> dict[str, dict[str, Any]]:
    """Run cells (in a pool of `workers` processes when > 1), printing each as it ends."""
    out: dict[str, dict[str, Any]] = {}
    if workers <= 1:
        for name in names:
            out[name] = _report(run_cell(name, days))
        return out
    with ProcessPoolExecutor(workers) as pool:
        futures = {name: pool.submit(run_cell, name, days) for name in names}
        for name in names:
            out[name] = _report(futures[name].result())
    return out


def _report(cell: dict[str, Any]) -> dict[str, Any]:
    if "error" in cell:
        print(f"{cell['name']:>22}: FAILED {cell['error']}", flush=True)
        return cell
    h = cell["herdrecord"]
    print(
        f"{cell['name']:>22}: IDF1 {h['idf1']:.3f} (floor {cell['floor']['idf1']:.3f}, "
        f"oracle {cell['oracle']['idf1']:.3f}, ceiling {cell['ceiling']['idf1']:.3f}), "
        f"animals {h['identities']}/{cell['data']['true_animals']}, "
        f"unknown {h['unknown_share']:.1%}, {cell['seconds']['total']:.0f} s",
        flush=True,
    )
    return cell


def run_cell(name: str, days: int | None) -> dict[str, Any]:
    """Simulate one cell, ingest and link it, and score herdrecord and the references.

    A cell that fails is reported as failed (with the error) and the matrix goes on.
    """
    config = cell_config(name, days)
    work = Path(tempfile.mkdtemp(prefix=f"herdrecord-linking-{name}-"))
    started = time.perf_counter()
    try:
        return _score_cell(name, config, work)
    except Exception as error:  # one broken cell must not hide the others
        return {
            "name": name,
            "overrides": CELLS[name],
            "days": config.days,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc().splitlines()[-8:],
            "seconds": {"total": round(time.perf_counter() - started, 1)},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _score_cell(name: str, config: SimulationConfig, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    sim = simulate(config)
    t1 = time.perf_counter()
    record = create_record(str(work / "record"), Settings())
    register_overlaps(record, sim.overlapping_cameras)
    ingest(record, candidates(sim, work / "bulk"))
    t2 = time.perf_counter()
    report = link_pending(record)
    t3 = time.perf_counter()
    data = load_tracklets(record, None)
    keys = list(zip(data.device_id, data.track_id, strict=True))
    truth = sim.truth_tracklets
    true_id = [str(a) for a in _lookup(truth, keys, "animal_id")]
    switched = np.array(_lookup(truth, keys, "switched"), dtype=bool)
    seconds = data.end_s - data.start_s + 1.0
    links = current_links(record)
    predicted = _lookup(links, keys, "animal_id")
    confidence = (
        np.array([np.nan if c is None else c for c in _lookup(links, keys, "confidence")])
        if "confidence" in links.column_names
        else np.full(len(keys), np.nan)
    )
    descriptors = centred(data.descriptor, data.weight, _camera_days(data))
    pen_day = _pen_days(data)
    threshold = getattr(report, "threshold", None)
    floor = nearest_neighbour_floor(
        descriptors, data.start_s, FLOOR_THRESHOLD if threshold is None else float(threshold)
    )
    oracle = nearest_true_day_centroid(descriptors, true_id, seconds, pen_day)
    ceiling = perfect_grouping_ceiling(descriptors, true_id, seconds, pen_day)
    t4 = time.perf_counter()
    herdrecord = _scores(true_id, predicted, seconds)
    mapping = identity_mapping(true_id, predicted, seconds)
    pairs = zip(predicted, true_id, strict=True)
    right = np.array([p is not None and mapping.get(p) == t for p, t in pairs])
    linked = np.array([p is not None for p in predicted])
    calib = calibration(np.where(linked, confidence, np.nan), right, seconds)
    herdrecord["ece"] = None if calib is None else calib.ece
    herdrecord["reliability"] = None if calib is None else calib.bins
    oracle_right = np.array([o == t for o, t in zip(oracle, true_id, strict=True)])
    return {
        "name": name,
        "overrides": CELLS[name],
        "data": {
            "pens": config.pens,
            "days": config.days,
            "cameras_per_pen": config.cameras_per_pen,
            "tracklets": len(keys),
            "true_animals": len(set(true_id)),
            "tracked_hours": round(float(seconds.sum()) / 3600.0, 1),
            "switched_tracklet_share": round(float(switched.mean()), 4),
            "switched_seconds_share": round(float(seconds[switched].sum() / seconds.sum()), 4),
            "overlapping_cameras": len(sim.overlapping_cameras),
            "tag_read_share": round(float(np.mean([t is not None for t in data.tag_id])), 4),
        },
        "herdrecord": herdrecord,
        "floor": {
            **_scores(true_id, floor, seconds),
            "threshold": FLOOR_THRESHOLD if threshold is None else round(float(threshold), 4),
        },
        "oracle": {
            **_scores(true_id, oracle, seconds),
            "accuracy": round(float(seconds[oracle_right].sum() / seconds.sum()), 4),
        },
        "ceiling": _scores(true_id, ceiling, seconds),
        "seconds": {
            "simulate": round(t1 - t0, 1),
            "ingest": round(t2 - t1, 1),
            "link": round(t3 - t2, 1),
            "references": round(t4 - t3, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
    }


def register_overlaps(record: Record, pairs: list[tuple[str, str, str]]) -> None:
    """Tell the record's camera registry which cameras' views overlap, (pen_id, camera_id,
    camera_id): the only barn fact the benchmark hands over (a farm enters it when
    installing cameras, `herdrecord cameras overlap`)."""
    for pen_id, cam_a, cam_b in pairs:
        set_overlap(record, pen_id, cam_a, cam_b)


def candidates(sim: Simulation, folder: Path, days: set[str] | None = None) -> Iterator[Candidate]:
    """Yield the simulation's batches (those of the given days) read back from bulk files."""
    folder.mkdir(parents=True, exist_ok=True)
    by_day: dict[str, list[dict[str, object]]] = {}
    for batch in sim.batches:
        day = str(batch["batch_id"]).split("/")[1][:10]
        if days is None or day in days:
            by_day.setdefault(day, []).append(batch)
    for day, batches in sorted(by_day.items()):
        path = folder / f"{day}.parquet"
        pq.write_table(bulk_table_from_json(batches), path)
        yield from read_file(path, Settings().max_batch_bytes)


def _scores(true_id: list[str], predicted: list[str | None], seconds: np.ndarray) -> dict[str, Any]:
    scores = idf1(np.array(true_id, dtype=object), np.array(predicted, dtype=object), seconds)
    unknown = np.array([p is None for p in predicted])
    return {
        "idf1": round(scores.idf1, 4),
        "identities": len({p for p in predicted if p is not None}),
        "unknown_share": round(float(seconds[unknown].sum() / seconds.sum()), 4),
    }


def _camera_days(data: TrackletData) -> list[tuple[object, ...]]:
    return [
        (str(p), str(d), str(c))
        for p, d, c in zip(data.pen_id, data.day, data.camera_id, strict=True)
    ]


def _pen_days(data: TrackletData) -> list[tuple[object, ...]]:
    return [(str(p), str(d)) for p, d in zip(data.pen_id, data.day, strict=True)]


def _lookup(table: pa.Table, keys: list[tuple[str, str]], column: str) -> list[Any]:
    index = {
        (d, t): v
        for d, t, v in zip(
            table.column("device_id").to_pylist(),
            table.column("track_id").to_pylist(),
            table.column(column).to_pylist(),
            strict=True,
        )
    }
    return [index.get(k) for k in keys]


def run_speed(animals: int, seed: int, path: Path, days: int = 13) -> dict[str, object]:
    """Link the last day of a big barn against the pool its earlier days built, each linked
    on its day (K exemplars per animal once the pool has matured); time it against a raw
    FAISS search of the same day's descriptors against the same pool."""
    import faiss

    from herdrecord.linking.pool import Pool

    pens = max(1, animals // 20)
    config = SimulationConfig(
        animals=animals,
        pens=pens,
        days=days,
        seed=seed,
        keyframes=False,
        obs_interval_s=600.0,
        arrival_rate_per_day=0.0,
    )
    sim = simulate(config)
    all_days = [date.fromordinal(config.start.toordinal() + d) for d in range(days)]
    last = all_days[-1]
    record = create_record(str(path), Settings())
    # Day by day, as the edge delivers them: each run links one day against what the earlier
    # runs built (the learned metric is refitted only once the record holds a quarter more
    # pairs than it was fitted on, so a year's daily runs refit it a few dozen times).
    for day in all_days[:-1]:
        ingest(record, candidates(sim, path.parent / "bulk", {day.isoformat()}))
        link_pending(record)
    pool_table = record.table("pool").to_lance().to_table()
    pool = Pool.from_arrow(pool_table, config.embedding_dim, 12)
    ingest(record, candidates(sim, path.parent / "bulk-last", {last.isoformat()}))
    report = link_pending(record)
    day = load_tracklets(record, {(f"pen-{i + 1}", last) for i in range(pens)})
    queries = centred(day.descriptor, day.weight, _camera_days(day))
    vectors = np.vstack([ex.vectors for ex in pool.animals.values()]).astype(np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    started = time.perf_counter()
    index.search(queries, 10)
    faiss_s = time.perf_counter() - started
    pool_bytes = pool_table.column("embedding").nbytes + 8 * pool_table.num_rows
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "animals": animals,
        "pens": pens,
        "day": last.isoformat(),
        "pool_built_over_days": days - 1,
        "tracklets_linked": report.tracklets,
        "pool_exemplars": len(vectors),
        "link_s": round(report.seconds, 2),
        "solve_s": round(report.solve_seconds, 2),
        "faiss_search_s": round(faiss_s, 2),
        "ratio_to_faiss": round(report.seconds / faiss_s, 2),
        "solve_ratio_to_faiss": round(report.solve_seconds / faiss_s, 2),
        "pool_bytes_per_animal": round(pool_bytes / max(1, len(pool.animals))),
        "pool_mb_for_10k_animals": round(pool_bytes / max(1, len(pool.animals)) * 1e4 / 2**20, 1),
    }


def _cell(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def matrix_table(cells: dict[str, dict[str, Any]]) -> str:
    """Return the matrix as a markdown table, one row per cell."""
    lines = [
        "| cell | days | IDF1 herdrecord | floor | oracle | ceiling | animals found / true "
        "| unknown | ECE | switched | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in cells.items():
        if "error" in c:
            lines.append(
                f"| {name} | {c['days']} | failed: `{c['error'][:80]}` | | | | | | | | "
                f"{c['seconds']['total']:.0f} |"
            )
            continue
        h = c["herdrecord"]
        lines.append(
            f"| {name} | {c['data']['days']} | **{h['idf1']:.3f}** | {c['floor']['idf1']:.3f} | "
            f"{c['oracle']['idf1']:.3f} | {c['ceiling']['idf1']:.3f} | "
            f"{h['identities']} / {c['data']['true_animals']} | {h['unknown_share']:.1%} | "
            f"{_cell(h['ece'])} | {c['data']['switched_tracklet_share']:.1%} | "
            f"{c['seconds']['total']:.0f} |"
        )
    return "\n".join(lines)


def update_readme(result: dict[str, Any]) -> None:
    """Replace the linking section of benchmarks/README.md with this run's figures."""
    matrix = result["matrix"]
    lines = [
        "<!-- linking:start -->",
        f"Stress matrix, {result['when']}, herdrecord {result.get('code') or 'unknown'}, "
        f"{result['machine']['cpus']} CPUs "
        f"({matrix['seconds']:.0f} s for the cells run). Base: "
        + ", ".join(f"`{k}={v}`" for k, v in matrix["base"].items())
        + ". Oracle IDF1 uses per-tracklet labels; its accuracy is in the JSON.",
        "",
        matrix_table(matrix["cells"]),
        "",
        "Cells (overrides of the base): "
        + "; ".join(
            f"**{n}** " + (", ".join(f"`{k}={v}`" for k, v in o.items()) or "none")
            for n, o in matrix["overrides"].items()
        )
        + ".",
    ]
    speed = result.get("speed")
    if speed:
        lines += [
            "",
            f"Speed ({speed.get('when', 'an earlier run')}): day "
            f"{speed['pool_built_over_days'] + 1} of a {speed['animals']:,}-animal barn "
            f"({speed['tracklets_linked']:,} tracklets) linked in {speed['link_s']} s; a raw "
            f"FAISS exact search of the same descriptors against the same pool "
            f"({speed['pool_exemplars']:,} exemplars) took {speed['faiss_search_s']} s: ratio "
            f"{speed['ratio_to_faiss']} for the whole run (reading tracklets, samples and "
            f"observations from Lance, solving, writing links, pool and index), "
            f"{speed['solve_ratio_to_faiss']} for deciding alone ({speed['solve_s']} s). Pool: "
            f"{speed['pool_bytes_per_animal']:,} bytes per animal, "
            f"{speed['pool_mb_for_10k_animals']} MB for 10,000 animals.",
        ]
    lines.append("<!-- linking:end -->")
    readme = HERE / "README.md"
    text = readme.read_text()
    if "<!-- linking:start -->" not in text:
        text += "\n## Linking\n\n<!-- linking:start -->\n<!-- linking:end -->\n"
    head, rest = text.split("<!-- linking:start -->", 1)
    tail = rest.split("<!-- linking:end -->", 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
