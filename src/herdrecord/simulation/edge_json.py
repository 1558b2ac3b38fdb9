"""Turn one simulated day (columnar numpy) into edge batch dicts, the contract's JSON form.

Millions of small dicts are built here, so values are looked up in tables of shared
Python objects (rounded floats, ints, time strings) instead of being created one by one,
and the cyclic garbage collector is paused while the containers are built.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import numpy as np

from herdrecord.contract.models import BATCH_SCHEMA_ID
from herdrecord.simulation.behaviour import BEHAVIOURS
from herdrecord.simulation.config import SimulationConfig

BatchDict = dict[str, Any]
EMBEDDING_DECIMALS = 5
SPEED_MAX_PX_S = 2000.0
CHUNK_ROWS = 2048
FULL_DAY_AT = 100_000  # times to format above which every second of the day is formatted


@dataclass(frozen=True)
class DayEdgeData:
    """What the edge devices saw on one day, columnar, in segment order.

    Per tracklet (S,): device, pen, camera, start_s, end_s, track_number, tag (list);
    per observation, sample and keyframe: arrays in tracklet order with `*_first` (S,)
    giving each tracklet's first row and `*_count` (S,) its number of rows.
    """

    day: date
    device: np.ndarray
    pen: np.ndarray
    camera: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    track_number: np.ndarray
    tag: list[str | None]
    obs_first: np.ndarray
    obs_count: np.ndarray
    obs_t_ms: np.ndarray
    obs_bbox: np.ndarray  # (n, 4) int px
    obs_area_px: np.ndarray
    obs_behaviour: np.ndarray  # class index
    obs_behaviour_conf: np.ndarray
    obs_speed_px_s: np.ndarray
    obs_gait_score: np.ndarray  # NaN = none
    sample_first: np.ndarray
    sample_count: np.ndarray
    sample_t_ms: np.ndarray
    sample_embedding: np.ndarray  # (n, dim) float32
    sample_quality: np.ndarray
    keyframe_first: np.ndarray
    keyframe_count: np.ndarray
    keyframe_t_ms: np.ndarray
    keyframe_bbox: np.ndarray  # (n, 4) int px
    keyframe_jpeg_b64: list[str]


def batch_id(device_id: str, day: date, window_start_h: int) -> str:
    """Return the batch id of a device's upload window: "dev-01/2026-09-01T06"."""
    return f"{device_id}/{day.isoformat()}T{window_start_h:02d}"


def device_id(pen: int) -> str:
    """Return the id of the edge device of pen number `pen` (0-based): "dev-01" ..."""
    return f"dev-{pen + 1:02d}"


def pen_id(pen: int) -> str:
    """Return the id of pen number `pen` (0-based): "pen-1" ..."""
    return f"pen-{pen + 1}"


def camera_id(camera: int) -> str:
    """Return the id of camera number `camera` (0-based) on a device: "cam1" ..."""
    return f"cam{camera + 1}"


def window_of(start_s: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """Return the upload window each tracklet belongs to: the one holding its start."""
    return np.asarray(start_s // config.window_s, dtype=np.int64)


def day_batches(data: DayEdgeData, config: SimulationConfig) -> list[BatchDict]:
    """Return the day's batches, ordered by window then device; empty windows send nothing."""
    with _gc_paused():
        tracklets = _tracklet_dicts(data, config)
    window = window_of(data.start_s, config)
    order = np.lexsort((data.track_number, data.device, window))
    batches: list[BatchDict] = []
    keys = np.stack([window[order], data.device[order]], axis=1)
    cuts = np.flatnonzero((np.diff(keys, axis=0) != 0).any(axis=1)) + 1
    for group in np.split(order, cuts):
        if len(group) == 0:
            continue
        dev, hour = int(data.device[group[0]]), int(window[group[0]]) * config.window_s // 3600
        batches.append(
            {
                "schema": BATCH_SCHEMA_ID,
                "batch_id": batch_id(device_id(dev), data.day, hour),
                "farm_id": config.farm_id,
                "device_id": device_id(dev),
                "embedder": {"name": config.embedder_name, "dim": config.embedding_dim},
                "tracklets": [tracklets[i] for i in group.tolist()],
            }
        )
    return batches


def _tracklet_dicts(data: DayEdgeData, config: SimulationConfig) -> list[BatchDict]:
    """Return one JSON-ready dict per tracklet, in segment order."""
    used = [data.obs_t_ms // 1000, data.start_s, data.end_s]
    clock = _Clock(data.day, np.concatenate(used))
    observations = _observation_dicts(data, clock)
    samples = _sample_dicts(data, clock)
    keyframes = _keyframe_dicts(data, clock)
    starts = clock.second_strings(data.start_s)
    ends = clock.second_strings(data.end_s)
    cameras = [camera_id(c) for c in range(config.cameras_per_pen)]
    pens = [pen_id(p) for p in range(config.n_pens)]
    columns = zip(
        data.camera.tolist(),
        data.pen.tolist(),
        starts,
        ends,
        data.track_number.tolist(),
        data.tag,
        _ranges(data.obs_first, data.obs_count),
        _ranges(data.sample_first, data.sample_count),
        _ranges(data.keyframe_first, data.keyframe_count),
        strict=True,
    )
    return [
        {
            "track_id": f"{cameras[cam]}-{number:06d}",
            "camera_id": cameras[cam],
            "pen_id": pens[pen],
            "start": start,
            "end": end,
            "tag_id": tag,
            "samples": samples[s0:s1],
            "observations": observations[o0:o1],
            "keyframes": keyframes[k0:k1],
        }
        for cam, pen, start, end, number, tag, (o0, o1), (s0, s1), (k0, k1) in columns
    ]


def _ranges(first: np.ndarray, count: np.ndarray) -> Iterator[tuple[int, int]]:
    return zip(first.tolist(), (first + count).tolist(), strict=True)


def _observation_dicts(data: DayEdgeData, clock: _Clock) -> list[BatchDict]:
    times = clock.ms_strings(data.obs_t_ms)
    bbox = _ints(int(data.obs_bbox.max(initial=0)))[data.obs_bbox].tolist()
    area = _whole_floats(int(data.obs_area_px.max(initial=0)))[
        data.obs_area_px.astype(np.int64)
    ].tolist()
    behaviour = np.array(BEHAVIOURS, dtype=object)[data.obs_behaviour].tolist()
    conf = _unit_floats()[np.rint(data.obs_behaviour_conf * 1000).astype(np.int64)].tolist()
    speed_index = np.rint(np.clip(data.obs_speed_px_s, 0.0, SPEED_MAX_PX_S) * 10).astype(np.int64)
    speed = _tenth_floats()[speed_index].tolist()
    gait = np.full(len(times), None, dtype=object)
    measured = ~np.isnan(data.obs_gait_score)
    gait[measured] = _hundredth_floats()[
        np.rint(data.obs_gait_score[measured] * 100).astype(np.int64)
    ]
    columns = zip(times, bbox, area, behaviour, conf, speed, gait.tolist(), strict=True)
    return [
        {
            "t": t,
            "bbox": b,
            "area_px": a,
            "behaviour": be,
            "behaviour_conf": c,
            "speed_px_s": s,
            "gait_score": g,
        }
        for t, b, a, be, c, s, g in columns
    ]


def _sample_dicts(data: DayEdgeData, clock: _Clock) -> list[BatchDict]:
    times = clock.ms_strings(data.sample_t_ms)
    embeddings = _embedding_lists(data.sample_embedding)
    quality = _unit_floats()[np.rint(data.sample_quality * 1000).astype(np.int64)].tolist()
    return [
        {"t": t, "embedding": e, "quality": q}
        for t, e, q in zip(times, embeddings, quality, strict=True)
    ]


def _embedding_lists(embedding: np.ndarray) -> list[list[float]]:
    """Return embeddings (n, dim) as lists of shared floats rounded to 5 decimals."""
    scale = 10**EMBEDDING_DECIMALS
    table = _embedding_floats()
    out: list[list[float]] = []
    for lo in range(0, len(embedding), CHUNK_ROWS):  # chunks keep temporaries small
        index = np.rint(embedding[lo : lo + CHUNK_ROWS] * scale).astype(np.int64)
        index += scale
        out.extend(table[index].tolist())
    return out


def _keyframe_dicts(data: DayEdgeData, clock: _Clock) -> list[BatchDict]:
    times = clock.ms_strings(data.keyframe_t_ms)
    columns = zip(times, data.keyframe_bbox.tolist(), data.keyframe_jpeg_b64, strict=True)
    return [{"t": t, "bbox": b, "jpeg_b64": j} for t, b, j in columns]


class _Clock:
    """Format times of one day as RFC 3339 UTC strings, sharing one string per second."""

    def __init__(self, day: date, seconds: np.ndarray) -> None:
        self.day = day
        # A big herd uses nearly every second of the day: format them all at once.
        # A small one formats only the seconds it uses.
        if len(seconds) > FULL_DAY_AT:
            self.seconds = np.arange(86_401)
        else:
            self.seconds = np.unique(seconds)
        moments = np.datetime64(day.isoformat(), "s") + self.seconds.astype("timedelta64[s]")
        text = np.datetime_as_string(moments, unit="s", timezone="UTC")
        self.strings = np.array(text.tolist(), dtype=object)

    def second_strings(self, seconds: np.ndarray) -> list[str]:
        """Return "YYYY-MM-DDTHH:MM:SSZ" per whole second into the day."""
        index = np.searchsorted(self.seconds, seconds)
        return self.strings[index].tolist()  # type: ignore[no-any-return]

    def ms_strings(self, t_ms: np.ndarray) -> list[str]:
        """Return RFC 3339 strings of times in ms into the day, with ms only where needed."""
        if not (t_ms % 1000).any():
            return self.second_strings(t_ms // 1000)
        moments = np.datetime64(self.day.isoformat(), "ms") + t_ms.astype("timedelta64[ms]")
        return np.datetime_as_string(moments, unit="ms", timezone="UTC").tolist()  # type: ignore[no-any-return]


def _ints(largest: int) -> np.ndarray:
    """Return a table of shared Python ints 0..n with n >= largest."""
    return _int_table(_table_size(largest))


def _whole_floats(largest: int) -> np.ndarray:
    """Return a table of shared Python floats 0.0..n with n >= largest."""
    return _whole_float_table(_table_size(largest))


def _table_size(largest: int) -> int:
    # Sizes grow in powers of two so that one cached table serves many days.
    return 1 << max(largest, 2047).bit_length()


@cache
def _int_table(size: int) -> np.ndarray:
    return np.array(list(range(size)), dtype=object)


@cache
def _whole_float_table(size: int) -> np.ndarray:
    return np.array(np.arange(size, dtype=np.float64).tolist(), dtype=object)


@cache
def _unit_floats() -> np.ndarray:
    """Return 0.000, 0.001, ..., 1.000 as shared Python floats."""
    return np.array((np.arange(1001) / 1000).tolist(), dtype=object)


@cache
def _tenth_floats() -> np.ndarray:
    return np.array((np.arange(int(SPEED_MAX_PX_S * 10) + 1) / 10).tolist(), dtype=object)


@cache
def _hundredth_floats() -> np.ndarray:
    return np.array((np.arange(301) / 100).tolist(), dtype=object)


@cache
def _embedding_floats() -> np.ndarray:
    """Return -1.00000 ... 1.00000 in steps of 1e-5 as shared Python floats."""
    scale = 10**EMBEDDING_DECIMALS
    return np.array((np.arange(-scale, scale + 1) / scale).tolist(), dtype=object)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of acyclic containers.

    Each collection walks every live container, so with the collector on, building a
    day of a big herd spends most of its time collecting garbage that does not exist.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
