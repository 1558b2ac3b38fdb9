"""Ground-truth tables of a simulation, as Arrow: animals, tracklets, events, days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from herdrecord.simulation.behaviour import BEHAVIOURS
from herdrecord.simulation.breeding import SowState
from herdrecord.simulation.config import SimulationConfig
from herdrecord.simulation.day import SimulatedDay
from herdrecord.simulation.edge_json import batch_id, camera_id, device_id, pen_id, window_of
from herdrecord.simulation.herd import HerdPlan, animal_id

UTC_TIME = pa.timestamp("us", tz="UTC")
DISEASE_NAMES = (None, "respiratory", "enteric")
SOW_STATE_NAMES = {int(s): s.name.lower() for s in SowState if s != SowState.NONE}


def animals_table(plan: HerdPlan) -> pa.Table:
    """Return one row per animal: registry facts, first pen and near-twin."""
    rows = plan.animals
    return pa.table(
        {
            "animal_id": pa.array([a.animal_id for a in rows], pa.string()),
            "tag_id": pa.array([a.tag_id for a in rows], pa.string()),
            "sex": pa.array([a.sex for a in rows], pa.string()),
            "role": pa.array([a.role for a in rows], pa.string()),
            "birth_date": pa.array([a.birth_date for a in rows], pa.date32()),
            "arrival_date": pa.array([a.arrival_date for a in rows], pa.date32()),
            "departure_date": pa.array([a.departure_date for a in rows], pa.date32()),
            "departure_kind": pa.array([a.departure_kind for a in rows], pa.string()),
            "first_pen_id": pa.array([pen_id(a.first_pen) for a in rows], pa.string()),
            "twin_of": pa.array(
                [None if a.twin_of is None else animal_id(a.twin_of) for a in rows], pa.string()
            ),
        }
    )


def events_table(plan: HerdPlan, config: SimulationConfig) -> pa.Table:
    """Return one row per ground-truth event, in time order."""
    origin = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
    events = plan.events
    return pa.table(
        {
            "animal_id": pa.array([animal_id(e.animal) for e in events], pa.string()),
            "kind": pa.array([e.kind for e in events], pa.string()),
            "at": pa.array([origin + timedelta(seconds=e.at_s) for e in events], UTC_TIME),
            "value": pa.array([e.value for e in events], pa.float64()),
            "scale": pa.array([e.scale for e in events], pa.string()),
            "code": pa.array([e.code for e in events], pa.string()),
            "note": pa.array([e.note for e in events], pa.string()),
            "author": pa.array([e.author for e in events], pa.string()),
        }
    )


def tracklets_table(day: SimulatedDay, config: SimulationConfig) -> pa.Table:
    """Return one row per tracklet of the day: who it really is, where, when."""
    edge, truth = day.edge, day.truth
    midnight = np.datetime64(edge.day.isoformat(), "us")
    devices = [device_id(int(p)) for p in edge.device]
    hours = window_of(edge.start_s, config) * config.window_s // 3600
    cameras = [camera_id(int(c)) for c in edge.camera]
    return pa.table(
        {
            "device_id": pa.array(devices, pa.string()),
            "track_id": pa.array(
                [f"{c}-{n:06d}" for c, n in zip(cameras, edge.track_number.tolist(), strict=True)],
                pa.string(),
            ),
            "batch_id": pa.array(
                [batch_id(d, edge.day, int(h)) for d, h in zip(devices, hours, strict=True)],
                pa.string(),
            ),
            "animal_id": pa.array(
                [animal_id(int(a)) for a in truth.roster.animal[truth.owners.animal_row]],
                pa.string(),
            ),
            "pen_id": pa.array([pen_id(int(p)) for p in edge.pen], pa.string()),
            "camera_id": pa.array(cameras, pa.string()),
            "start": _times(midnight, edge.start_s),
            "end": _times(midnight, edge.end_s),
            "n_observations": pa.array(truth.n_observations, pa.int32()),
            "n_samples": pa.array(truth.n_samples, pa.int32()),
            "tag_id": pa.array(edge.tag, pa.string()),
            # The tracker jumped to another animal inside the tracklet (animal_id is the one
            # it followed longest); switch_at is the first observation of the other one.
            "switched": pa.array(truth.owners.switch_at_ms >= 0, pa.bool_()),
            "switch_at": _switch_times(midnight, truth.owners.switch_at_ms),
        }
    )


def days_table(day: SimulatedDay) -> pa.Table:
    """Return one row per animal present on the day: pen, weight, time budget, health."""
    edge, truth = day.edge, day.truth
    roster = truth.roster
    n = len(roster.animal)
    columns: dict[str, pa.Array] = {
        "animal_id": pa.array([animal_id(int(a)) for a in roster.animal], pa.string()),
        "day": pa.array([edge.day] * n, pa.date32()),
        "pen_id": pa.array([pen_id(int(p)) for p in roster.pen], pa.string()),
        "weight_kg": pa.array(np.round(roster.weight_kg, 2), pa.float64()),
    }
    for k, name in enumerate(BEHAVIOURS):
        columns[f"{name}_min"] = pa.array(np.round(truth.minutes[:, k], 2), pa.float64())
    present_s = roster.present_to_s - roster.present_from_s
    columns["present_min"] = pa.array(np.round(present_s / 60.0, 2), pa.float64())
    columns["tracked_min"] = pa.array(np.round(truth.tracked_s / 60.0, 2), pa.float64())
    columns["lame"] = pa.array(roster.lame > 0, pa.bool_())
    columns["lame_severity"] = pa.array(roster.lame, pa.int8())
    columns["sick"] = pa.array(roster.disease > 0, pa.bool_())
    columns["disease"] = pa.array([DISEASE_NAMES[int(k)] for k in roster.disease], pa.string())
    columns["sow_state"] = pa.array(
        [SOW_STATE_NAMES.get(int(s)) for s in roster.sow_state], pa.string()
    )
    return pa.table(columns)


def _switch_times(midnight: np.datetime64, t_ms: np.ndarray) -> pa.Array:
    moments = midnight + (np.maximum(t_ms, 0) * 1000).astype("timedelta64[us]")
    return pa.array(moments, pa.timestamp("us"), mask=t_ms < 0).cast(UTC_TIME)


def _times(midnight: np.datetime64, seconds: np.ndarray) -> pa.Array:
    moments = midnight + (seconds * 1_000_000).astype("timedelta64[us]")
    return pa.array(moments, pa.timestamp("us")).cast(UTC_TIME)
