"""Write a simulation to disk: gzipped batch files, and the ground truth kept apart."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from herdrecord.simulation.edge_json import BatchDict
from herdrecord.simulation.run import Simulation


@dataclass(frozen=True)
class SimulationFiles:
    """Where a written simulation lies."""

    root: Path
    batches_dir: Path  # one <safe batch id>.json.gz per batch
    batch_files: tuple[Path, ...]
    truth_dir: Path
    animals: Path
    tracklets: Path
    events: Path
    days: Path
    config: Path


def batch_file_name(batch_id: str) -> str:
    """Return a batch's file name: "dev-01/2026-09-01T06" -> "dev-01_2026-09-01T06.json.gz"."""
    return batch_id.replace("/", "_").replace(":", "-") + ".json.gz"


def write_batch(batch: BatchDict, batches_dir: Path) -> Path:
    """Write one batch as gzipped JSON and return its path; same batch, same bytes."""
    path = batches_dir / batch_file_name(str(batch["batch_id"]))
    text = json.dumps(batch, separators=(",", ":"), allow_nan=False)
    # mtime=0 keeps the gzip header free of the wall clock, so files are reproducible.
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0))
    return path


def write_batches(batches: Iterable[BatchDict], batches_dir: Path) -> tuple[Path, ...]:
    """Write batches (a list, or `iter_batches(config)` streamed) and return their paths."""
    batches_dir.mkdir(parents=True, exist_ok=True)
    return tuple(write_batch(batch, batches_dir) for batch in batches)


def write_simulation(sim: Simulation, out_dir: Path) -> SimulationFiles:
    """Write batches to out_dir/batches and ground truth to out_dir/truth; return the paths."""
    out_dir = Path(out_dir)
    batches_dir = out_dir / "batches"
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    batch_files = write_batches(sim.batches, batches_dir)
    tables = {
        "animals": sim.truth_animals,
        "tracklets": sim.truth_tracklets,
        "events": sim.truth_events,
        "days": sim.truth_days,
    }
    for name, table in tables.items():
        pq.write_table(table, truth_dir / f"{name}.parquet")
    config_path = truth_dir / "config.json"
    config_path.write_text(json.dumps(sim.config.to_json(), indent=2, sort_keys=True) + "\n")
    return SimulationFiles(
        root=out_dir,
        batches_dir=batches_dir,
        batch_files=batch_files,
        truth_dir=truth_dir,
        animals=truth_dir / "animals.parquet",
        tracklets=truth_dir / "tracklets.parquet",
        events=truth_dir / "events.parquet",
        days=truth_dir / "days.parquet",
        config=config_path,
    )
