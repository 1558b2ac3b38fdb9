"""The Parquet form of the edge batch contract, for bulk loads: read and write it column-wise.

One row per tracklet. The batch fields (`schema`, `batch_id`, `farm_id`, `device_id`,
`embedder_name`, `embedder_dim`) are columns repeated on every row, so one file may hold many
batches; samples, observations and keyframes are nested lists of structs with the JSON form's
fields, except that a keyframe carries raw `jpeg` bytes instead of `jpeg_b64` and a bbox is a
list of four floats. Times are Parquet timestamps with a time zone.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from herdrecord.contract.frames import (
    KEYFRAME_FRAME,
    OBSERVATION_FRAME,
    TRACKLET_FRAME,
    BatchFrames,
    BatchHeader,
    frames_from_model,
)
from herdrecord.contract.limits import MAX_LISTED, MAX_TEXT_CHARS, BulkLimits
from herdrecord.contract.models import EdgeBatch
from herdrecord.store.schema import UTC_TIME

PAGE_SLACK_BYTES = 64 * 1024  # page headers and statistics a column chunk may add
_BBOX_TYPE = pa.list_(pa.float32())
BULK_SCHEMA = pa.schema(
    [
        ("schema", pa.string()),
        ("batch_id", pa.string()),
        ("farm_id", pa.string()),
        ("device_id", pa.string()),
        ("embedder_name", pa.string()),
        ("embedder_dim", pa.int32()),
        ("embedder_weights", pa.string()),  # optional: SHA-256 of the model's weights
        # The tracklet's own fields are the columnar frame's, less the counts it derives.
        *[field for field in TRACKLET_FRAME if not field.name.startswith("n_")],
        (
            "samples",
            pa.list_(
                pa.struct(
                    [
                        ("t", UTC_TIME),
                        ("embedding", pa.list_(pa.float32())),
                        ("quality", pa.float32()),
                    ]
                )
            ),
        ),
        (
            "observations",
            pa.list_(
                pa.struct(
                    [
                        ("t", UTC_TIME),
                        ("bbox", _BBOX_TYPE),
                        ("area_px", pa.float32()),
                        ("behaviour", pa.string()),
                        ("behaviour_conf", pa.float32()),
                        ("speed_px_s", pa.float32()),
                        ("gait_score", pa.float32()),
                    ]
                )
            ),
        ),
        (
            "keyframes",
            pa.list_(pa.struct([("t", UTC_TIME), ("bbox", _BBOX_TYPE), ("jpeg", pa.binary())])),
        ),
    ]
)
_HEADER_COLUMNS = ("schema", "batch_id", "farm_id", "device_id", "embedder_name", "embedder_dim")
_REQUIRED = (
    "schema",
    "batch_id",
    "farm_id",
    "device_id",
    "embedder_name",
    "embedder_dim",
    "track_id",
    "camera_id",
    "pen_id",
    "start",
    "end",
    "samples",
)


@dataclass(frozen=True)
class BulkBatch:
    """One batch read from a bulk file: its frames, or the problems that stop reading it."""

    batch_id: str | None
    frames: BatchFrames | None
    problems: tuple[str, ...]


def write_bulk(batches: Sequence[EdgeBatch], path: Path) -> None:
    """Write edge batches to one Parquet file in the bulk form."""
    tables = [bulk_table(frames_from_model(batch)) for batch in batches]
    table = pa.concat_tables(tables) if tables else BULK_SCHEMA.empty_table()
    pq.write_table(table, path, compression="zstd")


def bulk_table_from_json(batches: Iterable[dict[str, Any]]) -> pa.Table:
    """Return JSON-form batches (already trusted, e.g. simulated) as one bulk table.

    A format conversion only: the result is checked like any bulk file when it is ingested.
    Arrow parses the RFC 3339 strings and builds the nested columns in C++, so this is far
    faster than validating each batch with the pydantic models first.
    """
    rows = []
    for batch in batches:
        header = {
            "schema": batch["schema"],
            "batch_id": batch["batch_id"],
            "farm_id": batch["farm_id"],
            "device_id": batch["device_id"],
            "embedder_name": batch["embedder"]["name"],
            "embedder_dim": batch["embedder"]["dim"],
            "embedder_weights": batch["embedder"].get("weights_sha256"),
        }
        for tracklet in batch["tracklets"]:
            keyframes = [
                {"t": k["t"], "bbox": k["bbox"], "jpeg": base64.b64decode(k["jpeg_b64"])}
                for k in tracklet.get("keyframes", [])
            ]
            rows.append({**header, **tracklet, "keyframes": keyframes})
    text_times = pa.schema([_with_text_times(field) for field in BULK_SCHEMA])
    return pa.Table.from_pylist(rows, schema=text_times).cast(BULK_SCHEMA)


def _with_text_times(field: pa.Field) -> pa.Field:
    """Return the field with every timestamp replaced by a string (parsed later by a cast)."""
    return field.with_type(_text_times(field.type))


def _text_times(type_: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(type_):
        return pa.string()
    if pa.types.is_list(type_):
        return pa.list_(_text_times(type_.value_type))
    if pa.types.is_struct(type_):
        return pa.struct([_with_text_times(type_.field(i)) for i in range(type_.num_fields)])
    return type_


def bulk_table(frames: BatchFrames) -> pa.Table:
    """Return one batch's frames as rows of the bulk Parquet form."""
    h = frames.header
    trk = frames.tracklets
    n = trk.num_rows
    header = {
        "schema": pa.array([h.schema_id] * n, pa.string()),
        "batch_id": pa.array([h.batch_id] * n, pa.string()),
        "farm_id": pa.array([h.farm_id] * n, pa.string()),
        "device_id": pa.array([h.device_id] * n, pa.string()),
        "embedder_name": pa.array([h.embedder_name] * n, pa.string()),
        "embedder_dim": pa.array([h.embedder_dim] * n, pa.int32()),
        "embedder_weights": pa.array([h.embedder_weights] * n, pa.string()),
    }
    columns: dict[str, pa.Array | pa.ChunkedArray] = dict(header)
    for name in ("track_id", "camera_id", "pen_id", "start", "end", "tag_id"):
        columns[name] = trk.column(name)
    smp = frames.samples
    columns["samples"] = _nest(
        smp,
        n,
        {
            "t": smp.column("t"),
            "embedding": smp.column("embedding"),
            "quality": smp.column("quality"),
        },
    )
    obs = frames.observations
    obs_fields = {"t": obs.column("t"), "bbox": _bbox_lists(obs)}
    for name in ("area_px", "behaviour", "behaviour_conf", "speed_px_s", "gait_score"):
        obs_fields[name] = obs.column(name)
    columns["observations"] = _nest(obs, n, obs_fields)
    kfr = frames.keyframes
    columns["keyframes"] = _nest(
        kfr, n, {"t": kfr.column("t"), "bbox": _bbox_lists(kfr), "jpeg": kfr.column("jpeg")}
    )
    return pa.table(columns, schema=BULK_SCHEMA)


def _bbox_lists(table: pa.Table) -> pa.Array:
    coords = np.stack(
        [np.asarray(table.column(c).to_numpy(), np.float32) for c in _BBOX], axis=1
    ).reshape(-1)
    offsets = np.arange(0, len(coords) + 1, 4, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(coords, pa.float32()))


_BBOX = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


def _nest(
    child: pa.Table, n_parents: int, fields: dict[str, pa.Array | pa.ChunkedArray]
) -> pa.Array:
    """Return children grouped into one list per parent row, using their `ti` column."""
    ti = np.asarray(child.column("ti").to_numpy(), dtype=np.int64)
    counts = np.bincount(ti, minlength=n_parents) if len(ti) else np.zeros(n_parents, np.int64)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    arrays = [v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v for v in fields.values()]
    struct = pa.StructArray.from_arrays(arrays, names=list(fields))
    return pa.ListArray.from_arrays(pa.array(offsets), struct)


def read_bulk(path: Path, limits: BulkLimits) -> Iterator[BulkBatch]:
    """Yield the batches of a bulk Parquet file in the order they first appear.

    The file is judged before its values are decoded: the footer's row count and uncompressed
    sizes, then, with every text and binary column read as a dictionary, the bytes the values
    would take decoded and the longest text. A 4 KB file of a million repeated 100 KB strings
    is refused at the cost of one string, not of a million."""
    try:
        with pq.ParquetFile(path) as footer:
            metadata = footer.metadata
            schema = footer.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        yield BulkBatch(None, None, (f"file: not a readable Parquet file ({exc})",))
        return
    problems = _schema_problems(schema) or _footer_problems(metadata, limits)
    if problems:
        yield BulkBatch(None, None, tuple(problems))
        return
    try:
        encoded = pq.read_table(path, read_dictionary=_byte_array_columns(metadata))
    except (pa.ArrowException, OSError) as exc:
        yield BulkBatch(None, None, (f"file: not a readable Parquet file ({exc})",))
        return
    problems = _decoded_problems(encoded, limits)
    if problems:
        yield BulkBatch(None, None, tuple(problems))
        return
    try:
        table = _conform(encoded)
    except pa.ArrowException as exc:  # a column that cannot be cast to the bulk form
        yield BulkBatch(
            None, None, (f"file: a column has the wrong type for the bulk form ({exc})",)
        )
        return
    del encoded
    batch_ids = table.column("batch_id")
    if batch_ids.null_count:
        yield BulkBatch(None, None, ("batch_id: null on some rows",))
        return
    ids = np.asarray(batch_ids.to_numpy(zero_copy_only=False), dtype=object)
    unique_ids, first, which = np.unique(ids, return_index=True, return_inverse=True)
    appearance = np.argsort(first)  # batches in the order they first appear
    rank = np.empty(len(first), dtype=np.int64)
    rank[appearance] = np.arange(len(first))
    key = rank[which.reshape(-1)]
    # Each batch's rows together, in file order: a file written batch after batch already is,
    # and is sliced, not copied (a filter per batch scanned the whole file once per batch).
    if (np.diff(key) < 0).any():
        order = np.argsort(key, kind="stable")
        table, key = table.take(pa.array(order)), key[order]
    counts = np.bincount(key, minlength=len(first))
    offsets = np.r_[0, np.cumsum(counts)]
    for b, batch_id in enumerate(unique_ids[appearance]):
        yield _frames_of(str(batch_id), table.slice(int(offsets[b]), int(counts[b])))


def _footer_problems(metadata: pq.FileMetaData, limits: BulkLimits) -> list[str]:
    """Return what the footer alone shows to be over the limits: rows and uncompressed bytes."""
    if metadata.num_rows > limits.max_rows:
        return [
            f"file: {metadata.num_rows} tracklet rows, more than the limit of {limits.max_rows} "
            "per bulk file; split it into several files"
        ]
    stored = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )
    if stored > limits.max_bytes:
        return [_too_big(stored, limits)]
    return _long_value_columns(metadata, limits)


def _long_value_columns(metadata: pq.FileMetaData, limits: BulkLimits) -> list[str]:
    """Return the string and binary columns whose stored bytes show values over their cap.

    A column chunk of n values stores at most n × (cap + 4) bytes plus its page headers, so a
    file of long distinct strings is refused from its footer, before a value is read."""
    problems = []
    schema = metadata.schema
    for i in range(metadata.num_columns):
        column = schema.column(i)
        if column.physical_type != "BYTE_ARRAY":
            continue
        text = column.converted_type == "UTF8"
        cap = MAX_TEXT_CHARS * 4 if text else limits.max_value_bytes  # UTF-8: 4 bytes a char
        for g in range(metadata.num_row_groups):
            chunk = metadata.row_group(g).column(i)
            if chunk.total_uncompressed_size > chunk.num_values * (cap + 4) + PAGE_SLACK_BYTES:
                kind = f"identifiers and labels are at most {MAX_TEXT_CHARS} characters"
                if not text:
                    kind = f"binary values are at most {limits.max_value_bytes} bytes"
                problems.append(f"{_column_name(column.path)}: values too long ({kind})")
                break
    return problems


def _column_name(path: str) -> str:
    """Return a Parquet leaf path as the bulk form names it: `observations.behaviour`."""
    return ".".join(p for p in path.split(".") if p not in ("list", "element", "item"))


def _too_big(size: int, limits: BulkLimits) -> str:
    return (
        f"file: its values take {size} bytes decoded, more than the limit of {limits.max_bytes} "
        "(max_bulk_file_bytes); split it into several files"
    )


def _byte_array_columns(metadata: pq.FileMetaData) -> list[str]:
    """Return the paths of the file's string and binary leaves, to read as dictionaries."""
    schema = metadata.schema
    return [
        schema.column(i).path
        for i in range(metadata.num_columns)
        if schema.column(i).physical_type == "BYTE_ARRAY"
    ]


def _decoded_problems(table: pa.Table, limits: BulkLimits) -> list[str]:
    """Return the sizes that break the limits once the dictionaries would be decoded."""
    problems: list[str] = []
    total = 0
    for name in table.column_names:
        for chunk in table.column(name).chunks:
            total += _decoded_size(chunk, name, problems)
    if total > limits.max_bytes:
        problems.insert(0, _too_big(total, limits))
    return problems[:MAX_LISTED]


def _decoded_size(array: pa.Array, name: str, problems: list[str]) -> int:
    """Return the bytes `array` takes decoded; note text longer than `MAX_TEXT_CHARS`."""
    type_ = array.type
    if pa.types.is_dictionary(type_):
        lengths = pc.binary_length(array.dictionary).fill_null(0)
        if pa.types.is_string(type_.value_type) and len(lengths):
            longest = pc.max(lengths).as_py()
            if longest > MAX_TEXT_CHARS:
                problems.append(
                    f"{name}: a value of {longest} characters; identifiers and labels are at "
                    f"most {MAX_TEXT_CHARS}"
                )
        used = pc.sum(pc.take(lengths, array.indices)).as_py() or 0
        return int(used) + 4 * len(array)
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return 8 * (len(array) + 1) + _decoded_size(array.flatten(), name, problems)
    if pa.types.is_struct(type_):
        return sum(
            _decoded_size(child, f"{name}.{type_.field(i).name}", problems)
            for i, child in enumerate(array.flatten())
        )
    return int(array.nbytes)


def _schema_problems(schema: pa.Schema) -> list[str]:
    problems = [
        f"{name}: required column missing" for name in _REQUIRED if name not in schema.names
    ]
    problems += [
        f"{name}: unknown column (expected {', '.join(BULK_SCHEMA.names)})"
        for name in schema.names
        if name not in BULK_SCHEMA.names
    ]
    for field in schema:
        if field.name in BULK_SCHEMA.names and _has_naive_time(field.type):
            problems.append(f"{field.name}: timestamps must carry a time zone (store UTC)")
    return problems


def _has_naive_time(type_: pa.DataType) -> bool:
    if pa.types.is_timestamp(type_):
        return type_.tz is None
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return _has_naive_time(type_.value_type)
    if pa.types.is_struct(type_):
        return any(_has_naive_time(type_.field(i).type) for i in range(type_.num_fields))
    return False


def _conform(table: pa.Table) -> pa.Table:
    """Return the table with every expected column, cast to the bulk schema's types."""
    columns = []
    for field in BULK_SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=BULK_SCHEMA)


def _frames_of(batch_id: str, rows: pa.Table) -> BulkBatch:
    """Return the frames of one batch's rows, or the problems of its header."""
    headers = {}
    problems = []
    for name in _HEADER_COLUMNS:
        values = rows.column(name).unique()
        if len(values) != 1 or values[0].as_py() is None:
            problems.append(f"{name}: must be one non-null value for the whole batch")
        else:
            headers[name] = values[0].as_py()
    for name in ("track_id", "camera_id", "pen_id", "start", "end"):
        nulls = np.flatnonzero(np.asarray(rows.column(name).is_null()))
        problems += [f"tracklets[{i}].{name}: required" for i in nulls[:20]]
    if problems:
        return BulkBatch(batch_id, None, tuple(problems))
    header = BatchHeader(
        schema_id=headers["schema"],
        batch_id=batch_id,
        farm_id=headers["farm_id"],
        device_id=headers["device_id"],
        embedder_name=headers["embedder_name"],
        embedder_dim=int(headers["embedder_dim"]),
        embedder_weights=_one_or_none(rows.column("embedder_weights")),
    )
    samples = rows.column("samples").combine_chunks()
    observations = rows.column("observations").combine_chunks()
    keyframes = rows.column("keyframes").combine_chunks()
    trk_cols = {
        name: rows.column(name)
        for name in ("track_id", "camera_id", "pen_id", "start", "end", "tag_id")
    }
    trk_cols["n_samples"] = pc.list_value_length(samples).fill_null(0).cast(pa.int32())
    trk_cols["n_observations"] = pc.list_value_length(observations).fill_null(0).cast(pa.int32())
    trk_cols["n_keyframes"] = pc.list_value_length(keyframes).fill_null(0).cast(pa.int32())
    tracklets = pa.table(trk_cols, schema=TRACKLET_FRAME)
    smp = _unnest(samples)
    sample_frame = pa.table(
        {
            "ti": smp["ti"],
            "t": smp["t"],
            "quality": smp["quality"],
            "embedding": smp["embedding"],
        }
    )
    obs = _unnest(observations)
    obs_columns = {"ti": obs["ti"], "t": obs["t"], **_bbox_columns(obs["bbox"])}
    for name in ("area_px", "behaviour", "behaviour_conf", "speed_px_s", "gait_score"):
        obs_columns[name] = obs[name]
    kfr = _unnest(keyframes)
    kfr_columns = {
        "ti": kfr["ti"],
        "t": kfr["t"],
        **_bbox_columns(kfr["bbox"]),
        "jpeg": kfr["jpeg"],
    }
    frames = BatchFrames(
        header=header,
        tracklets=tracklets,
        samples=sample_frame,
        observations=pa.table(obs_columns, schema=OBSERVATION_FRAME),
        keyframes=pa.table(kfr_columns, schema=KEYFRAME_FRAME),
    )
    return BulkBatch(batch_id, frames, ())


def _unnest(lists: pa.ListArray) -> dict[str, pa.Array]:
    """Return a list<struct> column flattened, with each child's parent row index as `ti`."""
    flat = lists.flatten()
    ti = pc.list_parent_indices(lists).cast(pa.int32())
    out: dict[str, pa.Array] = {"ti": ti}
    # StructArray.flatten, not .field: it honours the array's offset (a sliced file's batch).
    for field, child in zip(flat.type, flat.flatten(), strict=True):
        out[field.name] = child
    return out


def _bbox_columns(bbox: pa.Array) -> dict[str, pa.Array]:
    """Return a list<float> bbox column as four columns; a malformed bbox becomes NaNs."""
    lengths = np.asarray(pc.list_value_length(bbox).fill_null(0), dtype=np.int64)
    coords = np.full((len(bbox), 4), np.nan, dtype=np.float32)
    ok = lengths == 4
    if ok.any():
        values = np.asarray(
            pc.list_flatten(bbox.filter(pa.array(ok))).fill_null(np.nan), np.float32
        )
        coords[ok] = values.reshape(-1, 4)
    return {name: pa.array(coords[:, i]) for i, name in enumerate(_BBOX)}


def _one_or_none(column: pa.ChunkedArray) -> str | None:
    """Return an optional header column's one value for the batch (None when absent); two
    different values, or a value on some rows only, become a non-hash the rules refuse."""
    values = column.unique().to_pylist()
    if len(values) > 1:
        return "mixed values in one batch"
    return None if not values or values[0] is None else str(values[0])
