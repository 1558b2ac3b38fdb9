"""Seeded synthetic herds: the public face of `herdrecord.simulation`."""

from herdrecord.simulation import (
    DayOutput,
    Simulation,
    SimulationConfig,
    SimulationFiles,
    batch_file_name,
    iter_batches,
    iter_days,
    simulate,
    write_batch,
    write_batches,
    write_simulation,
)

__all__ = [
    "DayOutput",
    "Simulation",
    "SimulationConfig",
    "SimulationFiles",
    "batch_file_name",
    "iter_batches",
    "iter_days",
    "simulate",
    "write_batch",
    "write_batches",
    "write_simulation",
]
