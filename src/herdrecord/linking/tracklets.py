"""Read what linking needs of stored tracklets: descriptors, times, track ends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.linking.assignment import PenDayTracklets
from herdrecord.linking.cameras import overlaps_by_pen
from herdrecord.store.record import Record


@dataclass(frozen=True)
class TrackPath:
    """Where one tracklet was seen: observation times and bbox centres, in time order."""

    t_s: np.ndarray  # (m,) seconds since the epoch
    xy: np.ndarray  # (m, 2) px


@dataclass(frozen=True)
class TrackletData:
    """Tracklets to link, sorted by (pen, start); arrays of shape (n,) unless noted."""

    device_id: list[str]
    track_id: list[str]
    camera_id: np.ndarray  # object
    pen_id: np.ndarray  # object
    day: np.ndarray  # datetime64[D], UTC day of the start
    start_s: np.ndarray  # seconds since the epoch
    end_s: np.ndarray
    tag_id: list[str | None]
    descriptor: np.ndarray  # (n, d) float32: quality-weighted mean of unit sample embeddings
    weight: np.ndarray  # summed sample quality
    first_xy: np.ndarray  # (n, 2) bbox centre of the first observation (NaN if none)
    last_xy: np.ndarray  # (n, 2) bbox centre of the last observation
    # The whole path of each tracklet on a camera whose view overlaps another's (twins are
    # told by where they are at once), keyed by (device_id, track_id); none elsewhere.
    paths: dict[tuple[str, str], TrackPath] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.device_id)

    def take(self, rows: np.ndarray) -> TrackletData:
        """Return the tracklets of the given rows (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        picked = [int(r) for r in rows]
        return TrackletData(
            device_id=[self.device_id[r] for r in picked],
            track_id=[self.track_id[r] for r in picked],
            camera_id=self.camera_id[rows],
            pen_id=self.pen_id[rows],
            day=self.day[rows],
            start_s=self.start_s[rows],
            end_s=self.end_s[rows],
            tag_id=[self.tag_id[r] for r in picked],
            descriptor=self.descriptor[rows],
            weight=self.weight[rows],
            first_xy=self.first_xy[rows],
            last_xy=self.last_xy[rows],
            paths=self.paths,
        )

    def path_of(self, rows: np.ndarray) -> list[TrackPath | None]:
        """Return the path of each given row, None where it was not kept."""
        return [self.paths.get((self.device_id[r], self.track_id[r])) for r in rows]

    def pen_days(self) -> Iterator[tuple[tuple[str, date], np.ndarray]]:
        """Yield ((pen_id, day), row indices) in day order, then pen order."""
        if len(self) == 0:
            return
        keys = sorted({(str(d), str(p)) for p, d in zip(self.pen_id, self.day, strict=True)})
        for day_text, pen_id in keys:
            day = np.datetime64(day_text, "D")
            rows = np.flatnonzero((self.pen_id == pen_id) & (self.day == day))
            yield (pen_id, date.fromisoformat(day_text)), rows

    def pen_day(self, rows: np.ndarray) -> PenDayTracklets:
        """Return the arrays of the given rows, as the assignment expects them."""
        return PenDayTracklets(
            camera=self.camera_id[rows],
            start_s=self.start_s[rows],
            end_s=self.end_s[rows],
            first_xy=self.first_xy[rows],
            last_xy=self.last_xy[rows],
            descriptor=self.descriptor[rows],
            weight=self.weight[rows],
        )


def load_tracklets(record: Record, pen_days: set[tuple[str, date]] | None) -> TrackletData:
    """Return the committed tracklets of the given pen-days (all when None), with features."""
    columns = [
        "batch_id",
        "device_id",
        "track_id",
        "camera_id",
        "pen_id",
        "start",
        "end",
        "tag_id",
        "descriptor",
        "descriptor_weight",
    ]
    tracklets = record.read_visible("tracklets", columns)
    day = pc.cast(pc.floor_temporal(tracklets.column("start"), unit="day"), pa.date32())
    tracklets = tracklets.append_column("day", day)
    if pen_days is not None:
        # A filter, not a join: Arrow's joins cannot carry the float16 descriptor column.
        key = pc.binary_join_element_wise(
            tracklets.column("pen_id"), pc.cast(tracklets.column("day"), pa.string()), "|"
        )
        wanted = pa.array([f"{pen}|{day.isoformat()}" for pen, day in pen_days], pa.string())
        tracklets = tracklets.filter(pc.is_in(key, value_set=wanted))
    tracklets = tracklets.sort_by([("pen_id", "ascending"), ("start", "ascending")])
    batch_ids = pc.unique(tracklets.column("batch_id"))
    descriptor, weight = _descriptors(record, tracklets)
    paired = {
        (pen, cam) for pen, pairs in overlaps_by_pen(record).items() for p in pairs for cam in p
    }
    on_paired = np.array(
        [
            (pen, cam) in paired
            for pen, cam in zip(
                tracklets.column("pen_id").to_pylist(),
                tracklets.column("camera_id").to_pylist(),
                strict=True,
            )
        ],
        dtype=bool,
    )
    first_xy, last_xy, paths = _endpoints(record, tracklets, batch_ids, on_paired)
    return TrackletData(
        device_id=tracklets.column("device_id").to_pylist(),
        track_id=tracklets.column("track_id").to_pylist(),
        camera_id=np.asarray(tracklets.column("camera_id").to_pylist(), dtype=object),
        pen_id=np.asarray(tracklets.column("pen_id").to_pylist(), dtype=object),
        day=np.asarray(tracklets.column("day").to_numpy(zero_copy_only=False)).astype(
            "datetime64[D]"
        ),
        start_s=_seconds(tracklets.column("start")),
        end_s=_seconds(tracklets.column("end")),
        tag_id=tracklets.column("tag_id").to_pylist(),
        descriptor=descriptor,
        weight=weight,
        first_xy=first_xy,
        last_xy=last_xy,
        paths=paths,
    )


def _seconds(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.float64) / 1e6


def _in_batches(batch_ids: pa.Array) -> str:
    quoted = ", ".join("'" + str(b).replace("'", "''") + "'" for b in batch_ids.to_pylist())
    return f"batch_id IN ({quoted})" if quoted else "false"


def _row_index(tracklets: pa.Table, rows: pa.Table) -> np.ndarray:
    """Return, for each row keyed by (device_id, track_id), the tracklet row it belongs to."""
    keys = pa.table(
        {
            "device_id": tracklets.column("device_id"),
            "track_id": tracklets.column("track_id"),
            "row": pa.array(np.arange(tracklets.num_rows)),
        }
    )
    positions = rows.select(["device_id", "track_id"]).append_column(
        "position", pa.array(np.arange(rows.num_rows))
    )
    joined = positions.join(keys, ["device_id", "track_id"], join_type="left outer")
    joined = joined.sort_by("position")
    return np.asarray(joined.column("row").fill_null(-1).to_numpy(), dtype=np.int64)


def _descriptors(record: Record, tracklets: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Return each tracklet's stored descriptor (n, d) float32 and its weight (n,)."""
    dim = record.embedder.dim
    flat = tracklets.column("descriptor").combine_chunks().flatten()
    vectors = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
    weight = np.asarray(tracklets.column("descriptor_weight").to_numpy(), dtype=np.float64)
    return vectors, weight


def _endpoints(
    record: Record, tracklets: pa.Table, batch_ids: pa.Array, want_path: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[tuple[str, str], TrackPath]]:
    """Return the bbox centre of each tracklet's first and last observation, px, and the
    whole path of each tracklet `want_path` (bool, n) names."""
    n = tracklets.num_rows
    first = np.full((n, 2), np.nan)
    last = np.full((n, 2), np.nan)
    paths: dict[tuple[str, str], TrackPath] = {}
    observations = record.dataset("observations").to_table(
        columns=["device_id", "track_id", "t", "bbox_x", "bbox_y", "bbox_w", "bbox_h"],
        filter=_in_batches(batch_ids),
    )
    if observations.num_rows == 0:
        return first, last, paths
    con = duckdb.connect()
    con.register("o", observations)
    ends = con.sql(
        "SELECT device_id, track_id, "
        "arg_min(bbox_x + bbox_w / 2, t) AS fx, arg_min(bbox_y + bbox_h / 2, t) AS fy, "
        "arg_max(bbox_x + bbox_w / 2, t) AS lx, arg_max(bbox_y + bbox_h / 2, t) AS ly "
        "FROM o GROUP BY device_id, track_id"
    ).to_arrow_table()
    row = _row_index(tracklets, ends)
    keep = row >= 0
    for name, target, axis in (
        ("fx", first, 0),
        ("fy", first, 1),
        ("lx", last, 0),
        ("ly", last, 1),
    ):
        target[row[keep], axis] = np.asarray(ends.column(name).to_numpy(), dtype=np.float64)[keep]
    if want_path.any():
        paths = _paths(tracklets, observations, want_path)
    return first, last, paths


def _paths(
    tracklets: pa.Table, observations: pa.Table, want_path: np.ndarray
) -> dict[tuple[str, str], TrackPath]:
    """Return the observation path of each wanted tracklet, keyed by (device_id, track_id)."""
    row = _row_index(tracklets, observations)
    keep = np.flatnonzero(row >= 0)
    keep = keep[want_path[row[keep]]]
    row = row[keep]

    def column(name: str) -> np.ndarray:
        return np.asarray(observations.column(name).take(pa.array(keep)).to_numpy(), np.float64)

    t_s = (
        np.asarray(
            observations.column("t").take(pa.array(keep)).cast(pa.int64()).to_numpy(), np.float64
        )
        / 1e6
    )
    xy = np.column_stack(
        [column("bbox_x") + column("bbox_w") / 2, column("bbox_y") + column("bbox_h") / 2]
    )
    order = np.lexsort((t_s, row))
    row, t_s, xy = row[order], t_s[order], xy[order]
    cuts = np.flatnonzero(np.diff(row)) + 1
    device_id = tracklets.column("device_id").to_pylist()
    track_id = tracklets.column("track_id").to_pylist()
    out: dict[tuple[str, str], TrackPath] = {}
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(row)], strict=True):
        if hi > lo:
            r = int(row[lo])
            out[(device_id[r], track_id[r])] = TrackPath(t_s=t_s[lo:hi], xy=xy[lo:hi])
    return out
