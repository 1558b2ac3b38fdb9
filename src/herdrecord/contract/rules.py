"""The record-dependent rules of the edge batch contract, checked column-wise on BatchFrames.

Both encodings (JSON and Parquet) end here, so a rule is written once. Checks are vectorised
with numpy: a bulk day of a 1,000-animal barn is millions of rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.config import Settings
from herdrecord.contract.frames import BatchFrames
from herdrecord.contract.limits import shortened
from herdrecord.contract.models import (
    BATCH_SCHEMA_ID,
    IDENTIFIER_PATTERN,
    Observation,
    Sample,
    numeric_bounds,
)

JPEG_MAGIC = b"\xff\xd8\xff"
IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
IDENTIFIER_RULE = "1-128 letters, digits and ._:/@+-, starting with a letter or digit"
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=2)  # edge clocks drift; more than this is a wrong clock
FLOAT16_MAX = 65504.0
MAX_PROBLEMS = 200  # a batch with more problems than this is listed up to here


@dataclass(frozen=True)
class Expectations:
    """What the record expects of a batch: its embedder, vocabulary and limits."""

    embedder_name: str
    embedder_dim: int
    embedder_weights: str | None  # the record's pinned weights, if any
    embedder_weights_required: bool  # a batch must state them (a record moved by reembed)
    behaviours: tuple[str, ...]
    max_tracklets: int
    max_samples: int
    max_observations: int
    max_keyframes: int
    max_keyframe_bytes: int
    now: datetime
    farm_id: str | None = None  # the record's farm: a batch for another farm is refused

    @classmethod
    def for_record(
        cls,
        embedder_name: str,
        embedder_dim: int,
        behaviours: tuple[str, ...],
        settings: Settings,
        now: datetime | None = None,
        embedder_weights: str | None = None,
        embedder_weights_required: bool = False,
        farm_id: str | None = None,
    ) -> Expectations:
        """Return the expectations of a record under the given settings."""
        return cls(
            embedder_name=embedder_name,
            embedder_dim=embedder_dim,
            embedder_weights=embedder_weights,
            embedder_weights_required=embedder_weights_required,
            behaviours=behaviours,
            max_tracklets=settings.max_tracklets_per_batch,
            max_samples=settings.max_samples_per_tracklet,
            max_observations=settings.max_observations_per_tracklet,
            max_keyframes=settings.max_keyframes_per_tracklet,
            max_keyframe_bytes=settings.max_keyframe_bytes,
            now=now or datetime.now(UTC),
            farm_id=farm_id,
        )


def check_frames(frames: BatchFrames, expect: Expectations) -> list[str]:
    """Return every rule the batch breaks, as `path: problem` lines (empty when valid)."""
    problems: list[str] = []
    for problem in _all_problems(frames, expect):
        problems.append(problem)
        if len(problems) >= MAX_PROBLEMS:
            problems.append(f"batch: more than {MAX_PROBLEMS} problems; listing stopped")
            break
    return problems


def _all_problems(frames: BatchFrames, expect: Expectations) -> Iterator[str]:
    yield from _identifier_problems(frames)
    yield from _header_problems(frames, expect)
    yield from _tracklet_problems(frames, expect)
    yield from _sample_problems(frames, expect)
    yield from _observation_problems(frames, expect)
    yield from _keyframe_problems(frames, expect)


def _identifier_problems(frames: BatchFrames) -> Iterator[str]:
    """Yield ids that break the contract's Identifier rule (the Parquet form's only check)."""
    h = frames.header
    for name in ("batch_id", "farm_id", "device_id", "embedder_name"):
        value = getattr(h, name)
        if len(value) > 128 or not IDENTIFIER.fullmatch(value):
            yield f"{name}: {shortened(value)} is not an identifier ({IDENTIFIER_RULE})"
    for name in ("track_id", "camera_id", "pen_id", "tag_id"):
        column = frames.tracklets.column(name)
        valid = pc.and_(
            pc.match_substring_regex(column, IDENTIFIER.pattern),
            pc.less_equal(pc.utf8_length(column), 128),
        )
        bad = np.asarray(valid.fill_null(name == "tag_id"))
        for i in _where(~bad):
            yield (
                f"tracklets[{i}].{name}: {shortened(column[i].as_py())} is not an identifier "
                f"({IDENTIFIER_RULE})"
            )


def _header_problems(frames: BatchFrames, expect: Expectations) -> Iterator[str]:
    h = frames.header
    if h.schema_id != BATCH_SCHEMA_ID:
        yield f"schema: expected {BATCH_SCHEMA_ID!r}, got {shortened(h.schema_id)}"
    pinned = expect.embedder_weights
    stated = h.embedder_weights
    if (h.embedder_name, h.embedder_dim) != (expect.embedder_name, expect.embedder_dim) or (
        pinned is not None and stated is not None and stated != pinned
    ):
        expected = f"{expect.embedder_name}/{expect.embedder_dim}" + (
            f" (weights {pinned[:12]})" if pinned else ""
        )
        got = f"{h.embedder_name}/{h.embedder_dim}" + (
            f" (weights {stated[:12]})" if stated else ""
        )
        yield (
            f"embedder: the record holds {expected} vectors, this batch has {got}; vectors "
            "of two models never mix: send the record's model's vectors, or move the record "
            "to the new model first (herdrecord reembed RECORD --weights DIR)"
        )
    if expect.farm_id is not None and h.farm_id != expect.farm_id:
        yield (
            f"farm_id: this record belongs to farm {expect.farm_id!r}, the batch to "
            f"{shortened(h.farm_id)}: send it to that farm's record"
        )
    if stated is not None and not re.fullmatch("[0-9a-f]{64}", stated):
        yield "embedder.weights_sha256: expected 64 lowercase hex digits"
    if stated is None and expect.embedder_weights_required:
        yield (
            "embedder.weights_sha256: required: this record was moved to a new model "
            f"(weights {str(pinned)[:12]}); state the weights the vectors come from"
        )


def _tracklet_problems(frames: BatchFrames, expect: Expectations) -> Iterator[str]:
    trk = frames.tracklets
    n = trk.num_rows
    if n > expect.max_tracklets:
        yield f"tracklets: {n} tracklets, more than the limit of {expect.max_tracklets}"
    track_ids = np.asarray(trk.column("track_id").to_numpy(zero_copy_only=False), dtype=object)
    counts = np.unique(track_ids, return_counts=True)[1]
    if (counts > 1).any():
        seen: dict[str, int] = {}
        for i, track_id in enumerate(track_ids):
            if track_id in seen:
                yield f"tracklets[{i}].track_id: {track_id!r} repeats tracklets[{seen[track_id]}]"
            else:
                seen[track_id] = i
    start = _micros(trk.column("start"))
    end = _micros(trk.column("end"))
    for i in _where(end < start):
        yield f"tracklets[{i}].end: {_iso(end[i])} is before start {_iso(start[i])}"
    earliest, latest = _micros_of(EARLIEST), _micros_of(expect.now + FUTURE_TOLERANCE)
    for i in _where(start < earliest):
        yield f"tracklets[{i}].start: {_iso(start[i])} is before 2000; check the device clock"
    for i in _where(end > latest):
        yield f"tracklets[{i}].end: {_iso(end[i])} is in the future; check the device clock"
    limits = (
        ("n_samples", "samples", expect.max_samples),
        ("n_observations", "observations", expect.max_observations),
        ("n_keyframes", "keyframes", expect.max_keyframes),
    )
    for column, label, limit in limits:
        counts_ = np.asarray(trk.column(column).to_numpy(), dtype=np.int64)
        for i in _where(counts_ > limit):
            yield f"tracklets[{i}].{label}: {counts_[i]} entries, more than the limit of {limit}"
    n_samples = np.asarray(trk.column("n_samples").to_numpy(), dtype=np.int64)
    for i in _where(n_samples == 0):
        yield f"tracklets[{i}].samples: at least one sample is required"


def _sample_problems(frames: BatchFrames, expect: Expectations) -> Iterator[str]:
    smp = frames.samples
    if smp.num_rows == 0:
        return
    prefix = _ChildPaths(smp, "samples")
    embedding = smp.column("embedding").combine_chunks()
    lengths = np.asarray(pc.list_value_length(embedding).fill_null(-1), dtype=np.int64)
    for i in _where(lengths != expect.embedder_dim):
        got = "none" if lengths[i] < 0 else str(lengths[i])
        yield f"{prefix[i]}.embedding: expected {expect.embedder_dim} floats, got {got}"
    values = np.asarray(pc.list_flatten(embedding).fill_null(np.nan), dtype=np.float64)
    bad = ~np.isfinite(values)
    # Embeddings are stored as float16: larger magnitudes would become infinity.
    huge = np.abs(np.where(bad, 0.0, values)) > FLOAT16_MAX
    if bad.any() or huge.any():
        owner = np.repeat(np.arange(len(lengths)), np.maximum(lengths, 0))
        for i in np.unique(owner[bad]):
            yield f"{prefix[i]}.embedding: contains non-finite values (NaN or infinity)"
        for i in np.unique(owner[huge]):
            yield f"{prefix[i]}.embedding: values beyond +-{FLOAT16_MAX:g} (send unit vectors)"
    yield from _bounds(smp, Sample, prefix)
    yield from _times_within(frames, smp, prefix)


def _observation_problems(frames: BatchFrames, expect: Expectations) -> Iterator[str]:
    obs = frames.observations
    if obs.num_rows == 0:
        return
    prefix = _ChildPaths(obs, "observations")
    vocabulary = pa.array(expect.behaviours, pa.string())
    known = np.asarray(pc.is_in(obs.column("behaviour"), value_set=vocabulary).fill_null(False))
    behaviour = obs.column("behaviour")
    for i in _where(~known):
        yield (
            f"{prefix[i]}.behaviour: {shortened(behaviour[int(i)].as_py())} is not in the record's "
            f"vocabulary ({', '.join(expect.behaviours)})"
        )
    yield from _bounds(obs, Observation, prefix)
    yield from _bbox_problems(obs, prefix)
    gait = np.asarray(obs.column("gait_score").to_numpy(zero_copy_only=False), dtype=np.float64)
    gait_null = np.asarray(obs.column("gait_score").is_null())
    for i in _where(~np.isfinite(gait) & ~gait_null):
        yield f"{prefix[i]}.gait_score: must be a finite number or null"
    yield from _times_within(frames, obs, prefix)


def _keyframe_problems(frames: BatchFrames, expect: Expectations) -> Iterator[str]:
    kfr = frames.keyframes
    if kfr.num_rows == 0:
        return
    prefix = _ChildPaths(kfr, "keyframes")
    jpeg = kfr.column("jpeg")
    sizes = np.asarray(pc.binary_length(jpeg).fill_null(0), dtype=np.int64)
    magic = pc.binary_slice(jpeg, 0, 3)
    heads = np.asarray(pc.equal(magic, pa.scalar(JPEG_MAGIC, pa.binary())).fill_null(False))
    for i in _where(~heads):
        yield f"{prefix[i]}.jpeg_b64: not a JPEG image"
    for i in _where(sizes > expect.max_keyframe_bytes):
        yield (
            f"{prefix[i]}.jpeg_b64: {sizes[i]} bytes, more than the limit of "
            f"{expect.max_keyframe_bytes}"
        )
    yield from _bbox_problems(kfr, prefix)
    yield from _times_within(frames, kfr, prefix)


class _ChildPaths:
    """Row index -> `tracklets[t].<kind>[k]`, formatted only for rows that are reported."""

    def __init__(self, table: pa.Table, kind: str) -> None:
        self._ti, self._pos = _positions(table)
        self._kind = kind

    def __getitem__(self, i: int) -> str:
        return f"tracklets[{self._ti[i]}].{self._kind}[{self._pos[i]}]"


def _positions(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Return each child row's tracklet index and its position in that tracklet's list."""
    ti = np.asarray(table.column("ti").to_numpy(), dtype=np.int64)
    if len(ti) == 0:
        return ti, ti
    starts = np.r_[0, np.flatnonzero(np.diff(ti)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(ti)]))
    return ti, np.arange(len(ti)) - run_start


def _bounds(table: pa.Table, model: type, prefix: _ChildPaths) -> Iterator[str]:
    """Yield range violations of the model's declared numeric bounds, column-wise."""
    for name, (ge, gt, le) in numeric_bounds(model).items():
        if name not in table.column_names:
            continue
        values = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = ~np.isfinite(values)
        if ge is not None:
            bad |= values < ge
        if gt is not None:
            bad |= values <= gt
        if le is not None:
            bad |= values > le
        rule = " and ".join(
            text
            for text, bound in ((f">= {ge}", ge), (f"> {gt}", gt), (f"<= {le}", le))
            if bound is not None
        )
        for i in _where(bad):
            yield f"{prefix[i]}.{name}: {values[i]} is not a finite number {rule}"


def _bbox_problems(table: pa.Table, prefix: _ChildPaths) -> Iterator[str]:
    coords = np.stack(
        [np.asarray(table.column(c).to_numpy(), dtype=np.float64) for c in _BBOX_COLUMNS], axis=1
    )
    bad = ~np.isfinite(coords).all(axis=1) | (coords[:, 2] <= 0) | (coords[:, 3] <= 0)
    for i in _where(bad):
        yield f"{prefix[i]}.bbox: {coords[i].tolist()} needs finite x, y and width, height > 0"


_BBOX_COLUMNS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


def _times_within(frames: BatchFrames, table: pa.Table, prefix: _ChildPaths) -> Iterator[str]:
    """Yield child rows whose time lies outside their tracklet's [start, end]."""
    ti = np.asarray(table.column("ti").to_numpy(), dtype=np.int64)
    missing = np.asarray(table.column("t").is_null())
    for i in _where(missing):
        yield f"{prefix[i]}.t: required"
    t = _micros(table.column("t"))
    start = _micros(frames.tracklets.column("start"))[ti]
    end = _micros(frames.tracklets.column("end"))[ti]
    # A tracklet whose own span is wrong is reported once, not once per child row.
    outside = ((t < start) | (t > end)) & ~missing & (end >= start)
    for i in _where(outside):
        yield (
            f"{prefix[i]}.t: {_iso(t[i])} is outside the tracklet's "
            f"[{_iso(start[i])}, {_iso(end[i])}]"
        )


def _where(mask: np.ndarray) -> list[int]:
    """Return the indices where a boolean mask is true, as Python ints."""
    return [int(i) for i in np.flatnonzero(mask)]


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Return a timestamp column as int64 microseconds, UTC; nulls become 0."""
    return np.asarray(column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), np.int64)


def _micros_of(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _iso(micros: np.integer | int) -> str:
    moment = datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC)
    return moment.isoformat().replace("+00:00", "Z")
