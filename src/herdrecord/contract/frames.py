"""BatchFrames: one edge batch in columnar form, the shape every encoding is turned into."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.contract.models import EdgeBatch
from herdrecord.reid.vectors import quality_weighted_descriptors
from herdrecord.store.schema import UTC_TIME, embedding_type

_BBOX = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


@dataclass(frozen=True)
class BatchHeader:
    """The batch-level fields of an edge batch."""

    schema_id: str
    batch_id: str
    farm_id: str
    device_id: str
    embedder_name: str
    embedder_dim: int
    embedder_weights: str | None = None  # SHA-256 of the model's weights, when stated


@dataclass(frozen=True)
class BatchFrames:
    """One edge batch as Arrow tables; child rows point at their tracklet by `ti` (row index).

    `tracklets`: track_id, camera_id, pen_id, start, end, tag_id, n_samples,
    n_observations, n_keyframes. `samples`: ti, t, quality, embedding (list<float32>, any
    length until checked). `observations`: ti, t, bbox_x..bbox_h, area_px, behaviour,
    behaviour_conf, speed_px_s, gait_score. `keyframes`: ti, t, bbox_x..bbox_h, jpeg.
    Children are ordered by tracklet, then by their position in the tracklet's list.
    """

    header: BatchHeader
    tracklets: pa.Table
    samples: pa.Table
    observations: pa.Table
    keyframes: pa.Table

    @property
    def n_rows(self) -> int:
        """Return the number of rows the batch adds across all tables."""
        return int(
            self.tracklets.num_rows
            + self.samples.num_rows
            + self.observations.num_rows
            + self.keyframes.num_rows
        )

    def content_sha256(self) -> str:
        """Return a hash of the batch's content, the same for its JSON and Parquet forms."""
        digest = hashlib.sha256()
        h = self.header
        for part in (h.schema_id, h.batch_id, h.farm_id, h.device_id, h.embedder_name):
            digest.update(part.encode() + b"\0")
        digest.update(str(h.embedder_dim).encode() + b"\0")
        if h.embedder_weights is not None:  # batches without it hash as before
            digest.update(h.embedder_weights.encode() + b"\0")
        for table in (self.tracklets, self.samples, self.observations, self.keyframes):
            for name in table.column_names:
                digest.update(name.encode() + b"\0")
                _digest_array(digest, table.column(name).combine_chunks())
        return digest.hexdigest()


def _digest_array(digest: hashlib._Hash, array: pa.Array) -> None:
    """Feed an array's values (and its nulls) into the digest in a type-stable way."""
    digest.update(len(array).to_bytes(8, "little"))
    if array.null_count:
        digest.update(np.asarray(array.is_null()).tobytes())
    if pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type):
        digest.update(_values(pc.list_value_length(array), pa.int64(), 0))
        _digest_array(digest, pc.list_flatten(array))
    elif pa.types.is_string(array.type) or pa.types.is_binary(array.type):
        large = array.cast(pa.large_binary())
        digest.update(_values(pc.binary_length(large), pa.int64(), 0))
        offsets = np.frombuffer(large.buffers()[1], dtype=np.int64)
        first, last = offsets[large.offset], offsets[large.offset + len(large)]
        data = large.buffers()[2]
        if data is not None and last > first:
            digest.update(memoryview(data)[first:last])
    elif pa.types.is_timestamp(array.type):
        digest.update(_values(array.cast(UTC_TIME), pa.int64(), 0))
    elif pa.types.is_floating(array.type):
        digest.update(_values(array, pa.float32(), 0.0))
    else:
        digest.update(_values(array, pa.int64(), 0))


def _values(array: pa.Array, type_: pa.DataType, fill: float) -> bytes:
    """Return an array's values as bytes of `type_`, nulls as `fill` (casts only if needed)."""
    if array.type != type_:
        array = array.cast(type_)
    if array.null_count:
        array = array.fill_null(fill)
    return bytes(np.asarray(array).data)


THINNING_STEPS_S: tuple[int, ...] = (60, 120, 600, 1200, 3600)
"""Intervals retention may thin observations to; each divides the next, so levels nest."""


def thinning_levels(owner: np.ndarray, t_us: np.ndarray, start_us: np.ndarray) -> np.ndarray:
    """Return, per observation row, the coarsest step of `THINNING_STEPS_S` it survives
    (0 if none): at a step of I seconds a tracklet keeps its first row in each I-second slice
    from its start, and its last row, so thinning never empties a tracklet or moves its ends.

    `owner` (n,) is each row's tracklet index, `t_us` (n,) its time and `start_us` (k,) each
    tracklet's start, microseconds; rows may come in any order."""
    n = len(owner)
    level = np.zeros(n, dtype=np.int32)
    if n == 0:
        return level
    order = np.lexsort((t_us, owner))
    o, t = owner[order], t_us[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = o[1:] != o[:-1]
    offset = t - start_us[o]
    for step in THINNING_STEPS_S:
        slot = offset // (step * 1_000_000)
        first = np.ones(n, dtype=bool)
        first[1:] = (o[1:] != o[:-1]) | (slot[1:] != slot[:-1])
        level[order[first | last]] = step
    return level


def _micros_of(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.cast(UTC_TIME).cast(pa.int64()).to_numpy(), dtype=np.int64)


def _micros(moment: datetime) -> int:
    """Return an aware datetime as microseconds since the epoch, UTC."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def frames_from_model(batch: EdgeBatch) -> BatchFrames:
    """Return the columnar form of a validated JSON edge batch."""
    trk: dict[str, list[object]] = {k: [] for k in _TRACKLET_COLUMNS}
    smp_ti: list[int] = []
    smp_t: list[int] = []
    smp_q: list[float] = []
    smp_emb: list[list[float]] = []
    obs: dict[str, list[object]] = {k: [] for k in _OBSERVATION_COLUMNS}
    kfr: dict[str, list[object]] = {k: [] for k in _KEYFRAME_COLUMNS}
    for ti, tracklet in enumerate(batch.tracklets):
        trk["track_id"].append(tracklet.track_id)
        trk["camera_id"].append(tracklet.camera_id)
        trk["pen_id"].append(tracklet.pen_id)
        trk["start"].append(_micros(tracklet.start))
        trk["end"].append(_micros(tracklet.end))
        trk["tag_id"].append(tracklet.tag_id)
        trk["n_samples"].append(len(tracklet.samples))
        trk["n_observations"].append(len(tracklet.observations))
        trk["n_keyframes"].append(len(tracklet.keyframes))
        for sample in tracklet.samples:
            smp_ti.append(ti)
            smp_t.append(_micros(sample.t))
            smp_q.append(sample.quality)
            smp_emb.append(sample.embedding)
        for o in tracklet.observations:
            row = (
                ti,
                _micros(o.t),
                *o.bbox,
                o.area_px,
                o.behaviour,
                o.behaviour_conf,
                o.speed_px_s,
                o.gait_score,
            )
            for key, value in zip(_OBSERVATION_COLUMNS, row, strict=True):
                obs[key].append(value)
        for k in tracklet.keyframes:
            frame_row: tuple[object, ...] = (ti, _micros(k.t), *k.bbox, k.jpeg_b64)
            for key, cell in zip(_KEYFRAME_COLUMNS, frame_row, strict=True):
                kfr[key].append(cell)
    header = BatchHeader(
        schema_id=batch.schema_id,
        batch_id=batch.batch_id,
        farm_id=batch.farm_id,
        device_id=batch.device_id,
        embedder_name=batch.embedder.name,
        embedder_dim=batch.embedder.dim,
        embedder_weights=batch.embedder.weights_sha256,
    )
    samples = pa.table(
        {
            "ti": pa.array(smp_ti, pa.int32()),
            "t": pa.array(smp_t, pa.int64()).cast(UTC_TIME),
            "quality": pa.array(smp_q, pa.float32()),
            "embedding": pa.array(smp_emb, pa.list_(pa.float32())),
        }
    )
    return BatchFrames(
        header=header,
        tracklets=_typed(trk, TRACKLET_FRAME),
        samples=samples,
        observations=_typed(obs, OBSERVATION_FRAME),
        keyframes=_typed(kfr, KEYFRAME_FRAME),
    )


TRACKLET_FRAME = pa.schema(
    [
        ("track_id", pa.string()),
        ("camera_id", pa.string()),
        ("pen_id", pa.string()),
        ("start", UTC_TIME),
        ("end", UTC_TIME),
        ("tag_id", pa.string()),
        ("n_samples", pa.int32()),
        ("n_observations", pa.int32()),
        ("n_keyframes", pa.int32()),
    ]
)
OBSERVATION_FRAME = pa.schema(
    [
        ("ti", pa.int32()),
        ("t", UTC_TIME),
        *[(name, pa.float32()) for name in _BBOX],
        ("area_px", pa.float32()),
        ("behaviour", pa.string()),
        ("behaviour_conf", pa.float32()),
        ("speed_px_s", pa.float32()),
        ("gait_score", pa.float32()),
    ]
)
KEYFRAME_FRAME = pa.schema(
    [
        ("ti", pa.int32()),
        ("t", UTC_TIME),
        *[(name, pa.float32()) for name in _BBOX],
        ("jpeg", pa.binary()),
    ]
)
_TRACKLET_COLUMNS = tuple(TRACKLET_FRAME.names)
_OBSERVATION_COLUMNS = tuple(OBSERVATION_FRAME.names)
_KEYFRAME_COLUMNS = tuple(KEYFRAME_FRAME.names)


def _typed(columns: dict[str, list[object]], schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        values = columns[field.name]
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def stored_rows(frames: BatchFrames, dim: int) -> dict[str, pa.Table]:
    """Return the rows a checked batch adds to each batch table, keyed by table name."""
    h = frames.header
    n_trk = frames.tracklets.num_rows
    track_ids = frames.tracklets.column("track_id")

    def keyed(table: pa.Table) -> list[pa.Array]:
        n = table.num_rows
        ti = table.column("ti")
        return [
            pa.repeat(pa.scalar(h.batch_id, pa.string()), n),
            pa.repeat(pa.scalar(h.device_id, pa.string()), n),
            pc.take(track_ids, ti).combine_chunks() if n else pa.array([], pa.string()),
        ]

    key_names = ["batch_id", "device_id", "track_id"]
    trk = frames.tracklets
    smp = frames.samples
    flat32 = pc.list_flatten(smp.column("embedding")).cast(pa.float32()).combine_chunks()
    descriptor, weight = quality_weighted_descriptors(
        np.array(flat32.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim),
        np.asarray(smp.column("quality").to_numpy(), dtype=np.float32),
        np.asarray(smp.column("ti").to_numpy(), dtype=np.int64),
        n_trk,
    )
    tracklets = pa.Table.from_arrays(
        [
            pa.array([h.batch_id] * n_trk, pa.string()),
            pa.array([h.device_id] * n_trk, pa.string()),
            trk.column("track_id"),
            pa.array([h.farm_id] * n_trk, pa.string()),
            *[trk.column(name) for name in _TRACKLET_COLUMNS[1:]],
            pa.FixedSizeListArray.from_arrays(
                pa.array(descriptor.reshape(-1).astype(np.float16)), dim
            ),
            pa.array(weight, pa.float32()),
        ],
        names=[
            "batch_id",
            "device_id",
            "track_id",
            "farm_id",
            *_TRACKLET_COLUMNS[1:],
            "descriptor",
            "descriptor_weight",
        ],
    )
    flat = flat32.cast(pa.float16())
    embedding = pa.FixedSizeListArray.from_arrays(flat, dim)
    samples = pa.Table.from_arrays(
        [*keyed(smp), smp.column("t"), smp.column("quality"), embedding],
        names=[*key_names, "t", "quality", "embedding"],
    )
    obs = frames.observations
    observations = pa.Table.from_arrays(
        [
            *keyed(obs),
            *[obs.column(c) for c in _OBSERVATION_COLUMNS[1:]],
            pa.array(
                thinning_levels(
                    np.asarray(obs.column("ti").to_numpy(), dtype=np.int64),
                    _micros_of(obs.column("t")),
                    _micros_of(trk.column("start")),
                ),
                pa.int32(),
            ),
        ],
        names=[*key_names, *_OBSERVATION_COLUMNS[1:], "thin_s"],
    )
    kfr = frames.keyframes
    keyframes = pa.Table.from_arrays(
        [
            *keyed(kfr),
            *[kfr.column(c) for c in _KEYFRAME_COLUMNS[1:]],
            pc.binary_length(kfr.column("jpeg")).cast(pa.int32()),
        ],
        names=[*key_names, *_KEYFRAME_COLUMNS[1:], "jpeg_bytes"],
    )
    assert embedding.type == embedding_type(dim)
    return {
        "tracklets": tracklets,
        "samples": samples,
        "observations": observations,
        "keyframes": keyframes,
    }
