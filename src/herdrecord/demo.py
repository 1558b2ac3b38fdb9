"""The demo: a small simulated herd, written as edge batches beside a fresh record."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.simulate import SimulationConfig, simulate, write_simulation
from herdrecord.store import Record, create_record, is_record

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
    config = SimulationConfig(animals=animals, pens=max(1, animals // 6), days=days, seed=seed)
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
