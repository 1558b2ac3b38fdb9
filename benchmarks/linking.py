"""Benchmark linking: identity accuracy on a simulated barn, and speed on a 1,000-animal day.

Accuracy (default 4 pens x 20 animals x 60 days, with drift, near-twins, moves, arrivals,
departures and tag reads on ~1 % of tracklets), side by side on the same embeddings:
  herdrecord   ingest + link_pending (constraints, joint per pen-day assignment, enrolment);
  floor        per-tracklet nearest neighbour, no constraints: each tracklet, in time order,
               takes the identity of its most similar earlier tracklet, or a new one below the
               same calibrated threshold;
  ceiling      nearest true centroid: each tracklet goes to the animal whose ground-truth
               centroid (over the whole run) it is closest to (an oracle no system has).
All three see the same camera-day-centred tracklet descriptors. Reported: IDF1 weighted by
tracked seconds, fraction of tracked time linked, and new-animal precision/recall.

Speed: a 1,000-animal barn's second day is linked against the pool built on its first day, and
timed against a raw FAISS search (exact inner product, k = 10) of the same day's descriptors
against the same pool, in the same run (target ratio <= 2).

Run: `.venv/bin/python benchmarks/linking.py [--days 60] [--speed-animals 1000]`.
Writes benchmarks/results/linking.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from herdrecord.assignment import centre_by_camera
from herdrecord.bulk import bulk_table_from_json
from herdrecord.config import Settings
from herdrecord.ingest import ingest
from herdrecord.intake import Candidate, read_file
from herdrecord.linking import LinkReport, link_pending
from herdrecord.links import current_links
from herdrecord.metrics import idf1, open_set_scores
from herdrecord.pool import Pool
from herdrecord.simulate import Simulation, SimulationConfig, simulate
from herdrecord.store import Record, create_record
from herdrecord.trackletdata import load_tracklets

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Run both parts and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pens", type=int, default=4)
    parser.add_argument("--animals", type=int, default=80)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--speed-animals", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="herdrecord-linking-"))
    try:
        accuracy = run_accuracy(args.animals, args.pens, args.days, args.seed, work / "acc")
        speed = run_speed(args.speed_animals, args.seed, work / "speed")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "linking",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "accuracy": accuracy,
        "speed": speed,
    }
    out = HERE / "results" / "linking.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    update_readme(result)
    print(json.dumps({"accuracy": accuracy["summary"], "speed": speed}, indent=2))


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


def run_accuracy(animals: int, pens: int, days: int, seed: int, path: Path) -> dict[str, object]:
    """Simulate, ingest and link the barn; score herdrecord, the floor and the ceiling."""
    config = SimulationConfig(
        animals=animals, pens=pens, days=days, seed=seed, keyframes=False, obs_interval_s=60.0
    )
    started = time.perf_counter()
    sim = simulate(config)
    simulate_s = time.perf_counter() - started
    record = create_record(str(path), Settings())
    started = time.perf_counter()
    ingested = ingest(record, candidates(sim, path.parent / "bulk"))
    ingest_s = time.perf_counter() - started
    report = link_pending(record)
    truth = sim.truth_tracklets
    data = load_tracklets(record, None)
    keys = list(zip(data.device_id, data.track_id, strict=True))
    true_id = _lookup(truth, keys, "animal_id")
    seconds = data.end_s - data.start_s + 1.0
    links = current_links(record)
    predicted = _lookup(links, keys, "animal_id")
    descriptors = _centred(data)
    floor = nearest_neighbour_floor(descriptors, data.start_s, report.threshold)
    ceiling = nearest_true_centroid(descriptors, true_id, seconds)
    truly_new = _truly_new(sim)
    rows = {
        "herdrecord": _scores(true_id, predicted, seconds, set(report.enrolled), truly_new),
        "floor (per-tracklet NN)": _scores(true_id, floor, seconds, set(floor), truly_new),
        "ceiling (nearest true centroid)": _scores(true_id, ceiling, seconds, set(), truly_new),
    }
    return {
        "data": {
            "pens": pens,
            "animals_at_start": animals,
            "animals_in_truth": sim.truth_animals.num_rows,
            "days": days,
            "tracklets": len(keys),
            "tag_read_share": round(float(np.mean([t is not None for t in data.tag_id])), 4),
            "simulate_s": round(simulate_s, 1),
            "ingest_s": round(ingest_s, 1),
            "batches": ingested.count("accepted"),
        },
        "link_s": round(report.seconds, 1),
        "threshold": round(report.threshold, 4),
        "summary": rows,
    }


def _scores(
    true_id: list[str | None],
    predicted: list[str | None],
    seconds: np.ndarray,
    enrolled: set[str | None],
    truly_new: set[str],
) -> dict[str, float]:
    scores = idf1(np.array(true_id, dtype=object), np.array(predicted, dtype=object), seconds)
    linked = float(seconds[[p is not None for p in predicted]].sum() / seconds.sum())
    open_set = open_set_scores(
        np.array(true_id, dtype=object),
        np.array(predicted, dtype=object),
        {e for e in enrolled if e is not None},
        truly_new,
        seconds,
    )
    return {
        "idf1": round(scores.idf1, 4),
        "linked": round(linked, 4),
        "new_animal_precision": _finite_or_none(open_set.precision),
        "new_animal_recall": _finite_or_none(open_set.recall) if enrolled else None,
        "identities": len({p for p in predicted if p is not None}),
    }


def _finite_or_none(value: float) -> float | None:
    return round(value, 4) if np.isfinite(value) else None


def _cell(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _truly_new(sim: Simulation) -> set[str]:
    """Return every animal: the record starts empty, so each one is new to it."""
    return set(sim.truth_animals.column("animal_id").to_pylist())


def _lookup(table: pa.Table, keys: list[tuple[str, str]], column: str) -> list[str | None]:
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


def _centred(data: object) -> np.ndarray:
    from herdrecord.trackletdata import TrackletData

    assert isinstance(data, TrackletData)
    out = np.zeros_like(data.descriptor)
    for _, rows in data.pen_days():
        out[rows] = centre_by_camera(data.pen_day(rows)).descriptor
    return out


def nearest_neighbour_floor(
    descriptors: np.ndarray, start_s: np.ndarray, threshold: float, window_days: float = 3.0
) -> list[str | None]:
    """Give each tracklet, in time order, the identity of its nearest earlier tracklet.

    The gallery is the tracklets of the last `window_days` (older ones have drifted away and
    would only slow the search); below `threshold` a tracklet starts a new identity.
    """
    order = np.argsort(start_s, kind="stable")
    ordered = np.ascontiguousarray(descriptors[order], dtype=np.float32)
    starts = start_s[order]
    lows = np.searchsorted(starts, starts - window_days * 86_400, side="left")
    labels = np.empty(len(order), dtype=object)
    next_id = 0
    for p in range(len(order)):
        lo = int(lows[p])
        if p > lo:
            sims = ordered[lo:p] @ ordered[p]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                labels[p] = labels[lo + best]
                continue
        labels[p] = f"N{next_id}"
        next_id += 1
    out: list[str | None] = [None] * len(order)
    for p, row in enumerate(order):
        out[int(row)] = str(labels[p])
    return out


def nearest_true_centroid(
    descriptors: np.ndarray, true_id: list[str | None], seconds: np.ndarray
) -> list[str | None]:
    """Give each tracklet the animal whose ground-truth centroid is nearest (an oracle)."""
    animals = sorted({a for a in true_id if a is not None})
    position = {a: i for i, a in enumerate(animals)}
    sums = np.zeros((len(animals), descriptors.shape[1]))
    for row, animal in enumerate(true_id):
        if animal is not None:
            sums[position[animal]] += descriptors[row] * seconds[row]
    centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    best = np.argmax(descriptors @ centroids.T, axis=1)
    return [animals[int(b)] for b in best]


def run_speed(animals: int, seed: int, path: Path, days: int = 13) -> dict[str, object]:
    """Link the last day of a big barn against the pool its earlier days built (K exemplars
    per animal once the pool has matured); time it against a raw FAISS search of the same
    day's descriptors against the same pool."""
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
    ingest(record, candidates(sim, path.parent / "bulk", {d.isoformat() for d in all_days[:-1]}))
    link_pending(record)
    pool_table = record.table("pool").to_lance().to_table()
    pool = Pool.from_arrow(pool_table, config.embedding_dim, 12)
    ingest(record, candidates(sim, path.parent / "bulk-last", {last.isoformat()}))
    report: LinkReport = link_pending(record)
    day = load_tracklets(record, {(f"pen-{i + 1}", last) for i in range(pens)})
    queries = _centred(day).astype(np.float32)
    vectors = np.vstack([ex.vectors for ex in pool.animals.values()]).astype(np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    started = time.perf_counter()
    index.search(queries, 10)
    faiss_s = time.perf_counter() - started
    pool_bytes = pool_table.column("embedding").nbytes + 8 * pool_table.num_rows
    return {
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


def update_readme(result: dict[str, object]) -> None:
    """Replace the linking section of benchmarks/README.md with this run's figures."""
    accuracy = result["accuracy"]
    speed = result["speed"]
    assert isinstance(accuracy, dict) and isinstance(speed, dict)
    data = accuracy["data"]
    lines = [
        "<!-- linking:start -->",
        f"{data['pens']} pens, {data['animals_in_truth']} animals over {data['days']} days "
        f"({data['tracklets']:,} tracklets, tag reads on {data['tag_read_share']:.1%}); "
        f"{result['when']}.",
        "",
        "| method | IDF1 | linked | new-animal precision | new-animal recall | identities |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in accuracy["summary"].items():
        lines.append(
            f"| {name} | {row['idf1']:.3f} | {row['linked']:.3f} | "
            f"{_cell(row['new_animal_precision'])} | {_cell(row['new_animal_recall'])} | "
            f"{row['identities']} |"
        )
    lines += [
        "",
        f"Speed: day {speed['pool_built_over_days'] + 1} of a {speed['animals']:,}-animal barn "
        f"({speed['tracklets_linked']:,} tracklets) "
        f"linked in {speed['link_s']} s; a raw FAISS exact search of the same "
        f"descriptors against the same pool ({speed['pool_exemplars']:,} exemplars) took "
        f"{speed['faiss_search_s']} s: ratio {speed['ratio_to_faiss']} for the whole run "
        f"(reading tracklets, samples and observations from Lance, solving, writing links, pool "
        f"and index), {speed['solve_ratio_to_faiss']} for deciding alone "
        f"({speed['solve_s']} s). Pool: "
        f"{speed['pool_bytes_per_animal']:,} bytes per animal, "
        f"{speed['pool_mb_for_10k_animals']} MB for 10,000 animals.",
        "<!-- linking:end -->",
    ]
    readme = HERE / "README.md"
    text = readme.read_text()
    if "<!-- linking:start -->" not in text:
        text += "\n## Linking\n\n<!-- linking:start -->\n<!-- linking:end -->\n"
    head, rest = text.split("<!-- linking:start -->", 1)
    tail = rest.split("<!-- linking:end -->", 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()


__all__ = ["Record"]
