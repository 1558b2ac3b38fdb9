"""Seeded synthetic pig herds that behave like a real barn, written as edge batches.

See docs/simulator.md for what is modelled, the parameters and the figures they yield.
"""

from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.files import (
    SimulationFiles,
    batch_file_name,
    write_batch,
    write_batches,
    write_simulation,
)
from herdrecord.simulation.run import DayOutput, Simulation, iter_batches, iter_days, simulate

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
