"""Run a simulation: all at once with its ground truth, or streamed day by day."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from herdrecord.simulation import truth
from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.day import SimulatedDay, World, build_world, simulate_day
from herdrecord.simulation.edge_json import BatchDict, camera_id, day_batches, pen_id
from herdrecord.simulation.overlap import overlapping_pairs


@dataclass(frozen=True)
class Simulation:
    """A simulated herd: its edge batches and, kept apart, what really happened."""

    config: SimulationConfig
    batches: list[BatchDict]  # edge batches, JSON-ready, per the edge batch contract v1
    truth_animals: pa.Table  # one row per animal: registry, first pen, near-twin
    truth_tracklets: pa.Table  # one row per tracklet: who it really is
    truth_events: pa.Table  # health and production events
    truth_days: pa.Table  # one row per animal-day: pen, weight, minutes per behaviour, health
    # (pen_id, camera_id, camera_id) of the camera pairs whose views overlap, as a camera
    # registry would list them; empty unless `camera_overlap_share` > 0.
    overlapping_cameras: list[tuple[str, str, str]] = field(default_factory=list)


def simulate(config: SimulationConfig) -> Simulation:
    """Return the simulated herd's batches and ground truth."""
    world = build_world(config)
    batches: list[BatchDict] = []
    tracklets: list[pa.Table] = []
    days: list[pa.Table] = []
    for day in _days(world):
        batches.extend(day_batches(day.edge, config))
        tracklets.append(truth.tracklets_table(day, config))
        days.append(truth.days_table(day))
    return Simulation(
        config=config,
        batches=batches,
        truth_animals=truth.animals_table(world.plan),
        truth_tracklets=pa.concat_tables(tracklets),
        truth_events=truth.events_table(world.plan, config),
        truth_days=pa.concat_tables(days),
        overlapping_cameras=overlapping_cameras(config),
    )


def overlapping_cameras(config: SimulationConfig) -> list[tuple[str, str, str]]:
    """Return (pen_id, camera_id, camera_id) for each camera pair whose views overlap."""
    if config.camera_overlap_share <= 0.0:
        return []
    return [
        (pen_id(p), camera_id(a), camera_id(b))
        for p in range(config.n_pens)
        for a, b in overlapping_pairs(config.cameras_per_pen)
    ]


def iter_batches(config: SimulationConfig) -> Iterator[BatchDict]:
    """Yield the simulated herd's batches day by day, holding one day in memory at a time.

    The batches are the same, in the same order, as `simulate(config).batches`.
    """
    for day in _days(build_world(config)):
        yield from day_batches(day.edge, config)


@dataclass(frozen=True)
class DayOutput:
    """One simulated day: its batches and the ground truth of its tracklets and animal-days."""

    batches: list[BatchDict]
    truth_tracklets: pa.Table
    truth_days: pa.Table


def iter_days(config: SimulationConfig) -> Iterator[DayOutput]:
    """Yield each day's batches with their ground truth, one day in memory at a time (the
    truth of a long run, without holding its batches)."""
    for day in _days(build_world(config)):
        yield DayOutput(
            day_batches(day.edge, config),
            truth.tracklets_table(day, config),
            truth.days_table(day),
        )


def _days(world: World) -> Iterator[SimulatedDay]:
    """Yield the simulated days in order, carrying each device's track numbers over."""
    next_number = np.ones(world.config.n_pens, dtype=np.int64)
    for d in range(world.config.days):
        day = simulate_day(world, d, next_number)
        issued = np.bincount(day.edge.device, minlength=world.config.n_pens)
        next_number = next_number + issued
        yield day
