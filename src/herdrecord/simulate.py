"""Seeded synthetic herds: the public face of `herdrecord.simulation`."""

from herdrecord.simulation import (
    Simulation,
    SimulationConfig,
    SimulationFiles,
    batch_file_name,
    iter_batches,
    simulate,
    write_batch,
    write_batches,
    write_simulation,
)

__all__ = [
    "Simulation",
    "SimulationConfig",
    "SimulationFiles",
    "batch_file_name",
    "iter_batches",
    "simulate",
    "write_batch",
    "write_batches",
    "write_simulation",
]
