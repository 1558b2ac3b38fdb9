"""Turn MOTChallenge tracker output and its sequence's frame images into edge batches.

A MOT tracks file (what BoxMOT, Ultralytics and the MOTChallenge tools write) holds one box
per line, `frame,id,x,y,w,h,conf,...`, with frames counted from 1. Each track id becomes one
tracklet; crops cut from the frame images (`img1/000001.jpg` ...) give its embedding samples
and keyframes. The result is the contract's JSON form, which the normal ingest checks like
any edge device's upload.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from herdrecord.contract.models import BATCH_SCHEMA_ID
from herdrecord.embedding.model import Embedder
from herdrecord.errors import InvalidInput

MOT_FIELDS = ("frame", "id", "x", "y", "w", "h", "conf")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
UNKNOWN_QUALITY = 0.5  # MOT writes conf -1 when the tracker gives none: neither good nor bad
KEYFRAME_SIDE_PX = 256
KEYFRAME_JPEG_QUALITY = 85
EMBED_CHUNK = 64  # crops embedded together; bounds the crops held in memory
EMBEDDING_DECIMALS = 6  # the record stores float16, which holds about 3 significant digits

Region = tuple[int, int, int, int]
"""A crop in pixels: (left, top, right, bottom), right and bottom exclusive."""

BoxKey = tuple[int, int]
"""A box of a track: (track id, position in the track's frame-ordered boxes)."""


@dataclass(frozen=True)
class MotBox:
    """One line of a MOT tracks file: a track's box in one frame, in pixels."""

    frame: int  # counted from 1
    track: int
    x: float
    y: float
    w: float
    h: float
    conf: float  # < 0: the tracker did not say

    @property
    def quality(self) -> float:
        """Return the crop quality a sample of this box carries, 0..1."""
        return UNKNOWN_QUALITY if self.conf < 0 else min(self.conf, 1.0)


def read_mot(path: Path) -> list[MotBox]:
    """Return the boxes of a MOT tracks file, in file order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the MOT tracks file ({exc})") from exc
    boxes: list[MotBox] = []
    seen: dict[tuple[int, int], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            box = _parse_line(line)
        except ValueError as exc:
            raise InvalidInput(
                f"{path} line {number}: {exc} (MOTChallenge lines are frame,id,x,y,w,h,conf,...)"
            ) from None
        first = seen.setdefault((box.frame, box.track), number)
        if first != number:
            raise InvalidInput(
                f"{path} line {number}: track {box.track} already has a box in frame "
                f"{box.frame} (line {first}); a track has one box per frame"
            )
        boxes.append(box)
    return boxes


def _parse_line(line: str) -> MotBox:
    """Return the box of one MOT line, or raise ValueError saying what is wrong with it."""
    fields = [field.strip() for field in line.split(",")]
    if len(fields) < len(MOT_FIELDS):
        raise ValueError(f"{len(fields)} fields, at least {len(MOT_FIELDS)} needed")
    frame, track, x, y, w, h, conf = (
        _number(name, text) for name, text in zip(MOT_FIELDS, fields, strict=False)
    )
    if frame < 1 or not frame.is_integer():
        raise ValueError(f"frame {fields[0]!r} is not a whole number >= 1 (MOT counts from 1)")
    if track < 0 or not track.is_integer():
        raise ValueError(f"id {fields[1]!r} is not a whole number >= 0")
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be > 0, got w={fields[4]}, h={fields[5]}")
    return MotBox(int(frame), int(track), x, y, w, h, conf)


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {text!r} is not a finite number")
    return value


def frame_files(frames_dir: Path) -> dict[int, Path]:
    """Return the frame images of a MOT sequence folder (`img1/`), frame number -> path."""
    if not frames_dir.is_dir():
        raise InvalidInput(
            f"{frames_dir} is not a directory: give the sequence's img1 folder of frame "
            "images (000001.jpg ...)"
        )
    frames: dict[int, Path] = {}
    for path in sorted(frames_dir.iterdir()):
        stem = path.stem
        if path.suffix.lower() not in IMAGE_SUFFIXES or not (stem.isascii() and stem.isdigit()):
            continue
        frame = int(stem)
        if frame in frames:
            raise InvalidInput(
                f"{frames_dir}: frame {frame} has two images ({frames[frame].name}, "
                f"{path.name}); keep one"
            )
        frames[frame] = path
    if not frames:
        raise InvalidInput(
            f"{frames_dir} holds no frame images named by frame number (000001.jpg, 1.png ...)"
        )
    return frames


@dataclass(frozen=True)
class _TrackPlan:
    """One track's boxes in frame order and which of them give samples and keyframes."""

    track: int
    boxes: tuple[MotBox, ...]
    sample_rows: tuple[int, ...]
    keyframe_rows: tuple[int, ...]


@dataclass(frozen=True)
class _CropRequest:
    key: BoxKey
    box: MotBox
    sample: bool
    keyframe: bool


@dataclass(frozen=True)
class _Crops:
    """What the frame pass cut: sample vectors and keyframe JPEGs with their regions."""

    vectors: dict[BoxKey, np.ndarray]  # (dim,) float32 unit vectors
    keyframes: dict[BoxKey, tuple[bytes, Region]]


def mot_batches(
    boxes: Sequence[MotBox],
    frames: dict[int, Path],
    embedder: Embedder,
    *,
    farm_id: str,
    device_id: str,
    camera_id: str,
    pen_id: str,
    start: datetime,
    fps: float,
    max_samples: int = 8,
    max_keyframes: int = 4,
    max_observations: int = 20_000,
    batch_id_prefix: str | None = None,
    behaviour: str = "standing",
) -> list[dict[str, Any]]:
    """Return the edge batches (JSON-ready dicts) of MOT tracks over their frame images.

    Frame n was taken at `start + (n - 1) / fps`. Each track id is one tracklet, whole in the
    batch of the UTC hour it starts in; batches come in hour order. A track whose boxes all
    lie outside the frame has no crop to embed, so no sample, and is left out. Every box is
    labelled `behaviour` with confidence 0: a tracker does not classify behaviour.
    """
    _check_arguments(start, fps, max_samples, max_keyframes, max_observations)
    if not boxes:
        return []
    missing = sorted({box.frame for box in boxes} - frames.keys())
    if missing:
        raise InvalidInput(
            f"{len(missing)} frames with boxes have no image (first: frame {missing[0]}); give "
            "the img1 folder of the sequence the tracks file was made from"
        )
    origin = start.astimezone(UTC)
    # The frames of a MOT sequence share one size (seqinfo.ini's imWidth, imHeight); the
    # first frame's header tells it, so crops are chosen among boxes that show something.
    size = _frame_size(frames[min(box.frame for box in boxes)])
    plans = [
        _plan(track, track_boxes, size, max_samples, max_keyframes)
        for track, track_boxes in _tracks(boxes).items()
    ]
    crops = _cut_crops(plans, frames, embedder)
    times = {f: _rfc3339(_frame_time(origin, fps, f)) for f in {box.frame for box in boxes}}
    by_hour: dict[datetime, list[dict[str, Any]]] = {}
    for plan in sorted(plans, key=lambda p: (p.boxes[0].frame, p.track)):
        samples = _samples(plan, crops, times)
        if not samples:
            continue
        begun = _frame_time(origin, fps, plan.boxes[0].frame)
        by_hour.setdefault(begun.replace(minute=0, second=0, microsecond=0), []).append(
            {
                "track_id": f"{camera_id}-mot-{origin:%Y%m%dT%H%M%S}-{plan.track:06d}",
                "camera_id": camera_id,
                "pen_id": pen_id,
                "start": times[plan.boxes[0].frame],
                "end": times[plan.boxes[-1].frame],
                "tag_id": None,
                "samples": samples,
                "observations": _observations(plan, fps, max_observations, behaviour, times),
                "keyframes": _keyframes(plan, crops, times),
            }
        )
    # The camera and the sequence's start keep two sequences of one device apart.
    prefix = batch_id_prefix or f"{device_id}/mot/{camera_id}/{start.astimezone(UTC):%Y%m%dT%H%M%S}"
    spec: dict[str, Any] = {"name": embedder.identity.name, "dim": embedder.dim}
    if embedder.identity.weights_sha256 is not None:
        # Stated, so that a record pinned to other weights refuses these vectors.
        spec["weights_sha256"] = embedder.identity.weights_sha256
    return [
        {
            "schema": BATCH_SCHEMA_ID,
            "batch_id": f"{prefix}/{hour:%Y-%m-%dT%H}",
            "farm_id": farm_id,
            "device_id": device_id,
            "embedder": spec,
            "tracklets": tracklets,
        }
        for hour, tracklets in sorted(by_hour.items())
    ]


def _check_arguments(
    start: datetime, fps: float, max_samples: int, max_keyframes: int, max_observations: int
) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise InvalidInput(
            f"start {start.isoformat()} has no UTC offset; give one (e.g. 2026-11-20T06:00:00Z)"
        )
    if not (math.isfinite(fps) and fps > 0):
        raise InvalidInput(f"fps {fps} must be a number > 0 (the sequence's frame rate)")
    if max_samples < 1 or max_observations < 1 or max_keyframes < 0:
        raise InvalidInput(
            f"max_samples ({max_samples}) and max_observations ({max_observations}) must be at "
            f"least 1, max_keyframes ({max_keyframes}) at least 0"
        )


def _tracks(boxes: Sequence[MotBox]) -> dict[int, tuple[MotBox, ...]]:
    """Return each track's boxes in frame order, tracks by id."""
    tracks: dict[int, list[MotBox]] = {}
    for box in sorted(boxes, key=lambda b: (b.track, b.frame)):
        tracks.setdefault(box.track, []).append(box)
    return {track: tuple(track_boxes) for track, track_boxes in tracks.items()}


def _plan(
    track: int,
    boxes: tuple[MotBox, ...],
    size: tuple[int, int],
    max_samples: int,
    max_keyframes: int,
) -> _TrackPlan:
    """Choose a track's sample and keyframe boxes among those that show part of the frame."""
    regions = [_region(box, size) for box in boxes]
    visible = [row for row, region in enumerate(regions) if region is not None]
    samples: list[int] = []
    # Spread over the track (an animal looks different as it moves), the best crop of each
    # stretch: highest quality, then the most visible pixels, then the earliest.
    for stretch in np.array_split(np.asarray(visible, dtype=np.int64), max_samples):
        if len(stretch):
            samples.append(
                max(
                    (int(row) for row in stretch),
                    key=lambda row: (boxes[row].quality, _area(regions[row])),
                )
            )
    keyframes = [visible[i] for i in _spread(len(visible), max_keyframes)]
    return _TrackPlan(track, boxes, tuple(samples), tuple(keyframes))


def _spread(n: int, k: int) -> list[int]:
    """Return at most k positions of 0..n-1 spread evenly, first and last included."""
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [0] * k
    return [int(i) for i in np.unique(np.rint(np.linspace(0, n - 1, k)).astype(np.int64))]


def _region(box: MotBox, size: tuple[int, int]) -> Region | None:
    """Return the box clamped to a frame of `size` (width, height); None if outside it."""
    width, height = size
    left, top = max(0, math.floor(box.x)), max(0, math.floor(box.y))
    right, bottom = min(width, math.ceil(box.x + box.w)), min(height, math.ceil(box.y + box.h))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def _area(region: Region | None) -> int:
    if region is None:
        return 0
    left, top, right, bottom = region
    return (right - left) * (bottom - top)


def _cut_crops(plans: Sequence[_TrackPlan], frames: dict[int, Path], embedder: Embedder) -> _Crops:
    """Open each frame that has chosen boxes once, in frame order; embed and encode its crops."""
    requests: dict[int, list[_CropRequest]] = {}
    for plan in plans:
        for row in sorted(set(plan.sample_rows) | set(plan.keyframe_rows)):
            box = plan.boxes[row]
            request = _CropRequest(
                (plan.track, row), box, row in plan.sample_rows, row in plan.keyframe_rows
            )
            requests.setdefault(box.frame, []).append(request)
    vectors: dict[BoxKey, np.ndarray] = {}
    keyframes: dict[BoxKey, tuple[bytes, Region]] = {}
    pending: list[tuple[BoxKey, Image.Image]] = []
    for frame in sorted(requests):
        image = _read_frame(frames[frame])
        for request in requests[frame]:
            region = _region(request.box, image.size)
            if region is None:  # outside this frame, though inside the first
                continue
            crop = image.crop(region)
            if request.keyframe:
                keyframes[request.key] = (_jpeg(crop), region)
            if request.sample:
                pending.append((request.key, crop))
        if len(pending) >= EMBED_CHUNK:
            vectors.update(_embed(embedder, pending))
            pending = []
    vectors.update(_embed(embedder, pending))
    return _Crops(vectors, keyframes)


def _embed(
    embedder: Embedder, crops: Sequence[tuple[BoxKey, Image.Image]]
) -> dict[BoxKey, np.ndarray]:
    if not crops:
        return {}
    vectors = embedder.embed_images([crop for _, crop in crops])
    return {key: vectors[i] for i, (key, _) in enumerate(crops)}


def _frame_size(path: Path) -> tuple[int, int]:
    """Return a frame image's (width, height), reading only its header."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{path}: not a readable image ({exc})") from exc


def _read_frame(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{path}: not a readable image ({exc})") from exc


def _jpeg(crop: Image.Image) -> bytes:
    """Return the crop as a JPEG, shrunk so that its longest side is at most 256 px."""
    small = crop.copy()
    small.thumbnail((KEYFRAME_SIDE_PX, KEYFRAME_SIDE_PX))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=KEYFRAME_JPEG_QUALITY)
    return buffer.getvalue()


def _samples(plan: _TrackPlan, crops: _Crops, times: dict[int, str]) -> list[dict[str, Any]]:
    samples = []
    for row in plan.sample_rows:
        vector = crops.vectors.get((plan.track, row))
        if vector is not None:
            box = plan.boxes[row]
            samples.append(
                {
                    "t": times[box.frame],
                    "embedding": np.round(vector.astype(np.float64), EMBEDDING_DECIMALS).tolist(),
                    "quality": box.quality,
                }
            )
    return samples


def _keyframes(plan: _TrackPlan, crops: _Crops, times: dict[int, str]) -> list[dict[str, Any]]:
    keyframes = []
    for row in plan.keyframe_rows:
        cut = crops.keyframes.get((plan.track, row))
        if cut is not None:
            jpeg, (left, top, right, bottom) = cut
            keyframes.append(
                {
                    "t": times[plan.boxes[row].frame],
                    "bbox": [float(left), float(top), float(right - left), float(bottom - top)],
                    "jpeg_b64": base64.b64encode(jpeg).decode("ascii"),
                }
            )
    return keyframes


def _observations(
    plan: _TrackPlan, fps: float, max_observations: int, behaviour: str, times: dict[int, str]
) -> list[dict[str, Any]]:
    """Return one observation per box, thinned evenly to `max_observations`."""
    kept = [plan.boxes[i] for i in _spread(len(plan.boxes), max_observations)]
    speeds = _speeds_px_s(kept, fps)
    return [
        {
            "t": times[box.frame],
            "bbox": [box.x, box.y, box.w, box.h],
            "area_px": box.w * box.h,  # no mask from a tracker: the box stands in for it
            "behaviour": behaviour,
            "behaviour_conf": 0.0,
            "speed_px_s": speed,
            "gait_score": None,
        }
        for box, speed in zip(kept, speeds, strict=True)
    ]


def _speeds_px_s(boxes: Sequence[MotBox], fps: float) -> list[float]:
    """Return the bbox centre's speed from each box's predecessor, px/s; the first box takes
    its successor's speed (0 for a single box)."""
    if len(boxes) < 2:
        return [0.0] * len(boxes)
    centres = np.array([(b.x + b.w / 2, b.y + b.h / 2) for b in boxes], dtype=np.float64)
    seconds = np.array([b.frame for b in boxes], dtype=np.float64) / fps
    distance = np.hypot(*np.diff(centres, axis=0).T)
    elapsed = np.diff(seconds)
    steps = np.divide(distance, elapsed, out=np.zeros_like(distance), where=elapsed > 0)
    return [round(float(v), 3) for v in np.r_[steps[0], steps]]


def _frame_time(start: datetime, fps: float, frame: int) -> datetime:
    return start + timedelta(seconds=(frame - 1) / fps)


def _rfc3339(moment: datetime) -> str:
    """Return a time as RFC 3339 in UTC, always with microseconds (so that times sort as
    text: "06:59:58.000000Z" before "06:59:58.500000Z")."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
