"""MOTChallenge import: a rendered sequence and its tracks file become edge batches that the
real ingest accepts, embedded by a tiny randomly initialised DINOv3."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from conftest import save_tiny_dinov3
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.embedding.model import Embedder
from herdrecord.embedding.mot import MotBox, frame_files, mot_batches, read_mot
from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.store.record import create_record, open_record

FPS = 10.0
N_FRAMES = 40
# Frame 21 is 07:00:00, so the sequence crosses an hour: tracks starting later go in batch 07.
START = datetime(2026, 11, 20, 6, 59, 58, tzinfo=UTC)
SIZE = (320, 240)
COLOURS = {1: (200, 60, 60), 2: (60, 60, 200), 3: (230, 200, 40)}
GAP = (15, 16, 17)  # track 1 is occluded: no boxes in these frames


@dataclass(frozen=True)
class Sequence:
    tracks_file: Path
    img1: Path
    boxes: dict[int, list[MotBox]]  # track -> boxes in frame order


def _track_boxes() -> dict[int, list[MotBox]]:
    """Return the scene: track 1 enters from the left edge and has a gap, track 2 leaves
    after frame 24, track 3 (large, wider than a keyframe) starts at frame 25, track 4 lies
    wholly outside the frame."""
    boxes: dict[int, list[MotBox]] = {1: [], 2: [], 3: [], 4: []}
    for f in range(1, N_FRAMES + 1):
        if f not in GAP:
            conf = 0.5 + 0.45 * (f % 7) / 6
            boxes[1].append(MotBox(f, 1, -20 + 6 * (f - 1), 40, 50, 30, round(conf, 2)))
        if f <= 24:
            boxes[2].append(MotBox(f, 2, 200 - 3 * (f - 1), 150 + (f - 1), 40, 40, -1))
        if f >= 25:
            boxes[3].append(MotBox(f, 3, 20 + 2 * (f - 25), 100, 280, 120, 1.0))
        if f <= 5:
            boxes[4].append(MotBox(f, 4, 400, 10, 30, 30, 0.9))
    return boxes


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> Sequence:
    root = tmp_path_factory.mktemp("mot")
    img1 = root / "img1"
    img1.mkdir()
    boxes = _track_boxes()
    for f in range(1, N_FRAMES + 1):
        image = Image.new("RGB", SIZE, (90, 120, 80))
        draw = ImageDraw.Draw(image)
        for track in (3, 1, 2):
            for box in boxes[track]:
                if box.frame == f:
                    draw.ellipse((box.x, box.y, box.x + box.w, box.y + box.h), fill=COLOURS[track])
        image.save(img1 / f"{f:06d}.jpg", quality=90)
    lines = [
        f"{b.frame},{b.track},{b.x:.2f},{b.y:.2f},{b.w:.2f},{b.h:.2f},{b.conf:.2f},-1,-1,-1"
        for b in sorted((b for bs in boxes.values() for b in bs), key=lambda b: b.frame)
    ]
    tracks_file = root / "tracks.txt"
    tracks_file.write_text("\n".join(lines) + "\n\n")
    return Sequence(tracks_file, img1, boxes)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_dinov3(tmp_path_factory.mktemp("weights") / "dinov3")


@pytest.fixture(scope="module")
def embedder(weights: Path) -> Embedder:
    return Embedder.load(weights)


def _batches(
    sequence: Sequence,
    embedder: Embedder,
    frames: dict[int, Path] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """The sequence's batches (frame images and options as given, else the defaults)."""
    given = {
        "farm_id": "farm-a",
        "device_id": "dev-01",
        "camera_id": "cam2",
        "pen_id": "pen-3",
        "start": START,
        "fps": FPS,
        **options,
    }
    images = frame_files(sequence.img1) if frames is None else frames
    return mot_batches(read_mot(sequence.tracks_file), images, embedder, **given)


@pytest.fixture(scope="module")
def batches(sequence: Sequence, embedder: Embedder) -> list[dict[str, Any]]:
    return _batches(sequence, embedder, max_samples=5, max_keyframes=3)


def _tracklets(batches: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Return the tracklets by MOT track id (the number ending the track_id)."""
    return {int(t["track_id"].rsplit("-", 1)[1]): t for b in batches for t in b["tracklets"]}


def _at(frame: int) -> str:
    moment = START + timedelta(seconds=(frame - 1) / FPS)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_read_mot_parses_tracker_output(tmp_path: Path) -> None:
    path = tmp_path / "tracks.txt"
    path.write_text(
        "1,3,10.5,20,30,40,0.87,-1,-1,-1\n\n 2 , 3 , 11 , 21 , 30 , 40 , -1 \n1.0,7,0,0,5,6,1.3\n"
    )
    assert read_mot(path) == [
        MotBox(1, 3, 10.5, 20, 30, 40, 0.87),
        MotBox(2, 3, 11, 21, 30, 40, -1),
        MotBox(1, 7, 0, 0, 5, 6, 1.3),
    ]
    assert [box.quality for box in read_mot(path)] == [0.87, 0.5, 1.0]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1,2,3,4,5,6", "6 fields, at least 7 needed"),
        ("1,2,3,x,5,6,0.9", "y 'x' is not a number"),
        ("1,2,3,4,5,nan,0.9", "h 'nan' is not a finite number"),
        ("1,2,3,4,0,6,0.9", "box width and height must be > 0, got w=0, h=6"),
        ("1,2,3,4,5,-6,0.9", "box width and height must be > 0, got w=5, h=-6"),
        ("0,2,3,4,5,6,0.9", "frame '0' is not a whole number >= 1"),
        ("1.5,2,3,4,5,6,0.9", "frame '1.5' is not a whole number >= 1"),
        ("1,-1,3,4,5,6,0.9", "id '-1' is not a whole number >= 0"),
    ],
)
def test_read_mot_names_the_file_and_line_of_a_malformed_box(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "tracks.txt"
    path.write_text(f"1,1,3,4,5,6,0.9\n\n{line}\n")
    with pytest.raises(InvalidInput) as caught:
        read_mot(path)
    assert f"{path} line 3: {problem}" in str(caught.value)


def test_read_mot_refuses_two_boxes_of_a_track_in_one_frame(tmp_path: Path) -> None:
    path = tmp_path / "tracks.txt"
    path.write_text("4,1,3,4,5,6,0.9\n4,2,3,4,5,6,0.9\n4,1,8,4,5,6,0.9\n")
    with pytest.raises(InvalidInput, match="line 3: track 1 already has a box in frame 4"):
        read_mot(path)


def test_frame_files_maps_numbered_images(tmp_path: Path) -> None:
    for name in ("000002.jpg", "1.png", "cover.jpg", "000003.txt"):
        Image.new("RGB", (8, 8)).save(tmp_path / name, format="PNG")
    assert frame_files(tmp_path) == {1: tmp_path / "1.png", 2: tmp_path / "000002.jpg"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match="no frame images"):
        frame_files(empty)


def test_one_tracklet_per_track_whole_in_the_batch_of_its_start_hour(
    batches: list[dict[str, Any]], sequence: Sequence, embedder: Embedder
) -> None:
    assert [b["batch_id"] for b in batches] == [
        "dev-01/mot/cam2/20261120T065958/2026-11-20T06",
        "dev-01/mot/cam2/20261120T065958/2026-11-20T07",
    ]
    assert [[t["track_id"] for t in b["tracklets"]] for b in batches] == [
        ["cam2-mot-20261120T065958-000001", "cam2-mot-20261120T065958-000002"],
        ["cam2-mot-20261120T065958-000003"],
    ]
    assert batches[0]["embedder"] == {
        "name": "dinov3-vits16",
        "dim": 384,
        "weights_sha256": embedder.identity.weights_sha256,
    }
    tracklets = _tracklets(batches)
    assert 4 not in tracklets  # wholly outside the frame: nothing to embed
    for track, tracklet in tracklets.items():
        boxes = sequence.boxes[track]
        assert (tracklet["start"], tracklet["end"]) == (_at(boxes[0].frame), _at(boxes[-1].frame))
        assert [o["t"] for o in tracklet["observations"]] == [_at(b.frame) for b in boxes]
        assert [o["bbox"] for o in tracklet["observations"]] == [
            [b.x, b.y, b.w, b.h] for b in boxes
        ]
    assert tracklets[1]["start"] == "2026-11-20T06:59:58.000000Z"
    assert tracklets[3]["end"] == "2026-11-20T07:00:01.900000Z"


def test_speed_follows_the_box_centre_across_a_gap(batches: list[dict[str, Any]]) -> None:
    tracklets = _tracklets(batches)
    # Track 1 moves 6 px a frame, track 2 (3, 1) px, at 10 frames a second; the gap in
    # track 1 is bridged at the same speed.
    assert {o["speed_px_s"] for o in tracklets[1]["observations"]} == {60.0}
    speeds = [o["speed_px_s"] for o in tracklets[2]["observations"]]
    assert speeds == pytest.approx([10 * np.hypot(3, 1)] * 24, abs=1e-3)


def test_samples_are_unit_vectors_of_the_best_crops_spread_over_the_track(
    batches: list[dict[str, Any]],
) -> None:
    for tracklet in _tracklets(batches).values():
        samples = tracklet["samples"]
        assert 1 <= len(samples) <= 5
        vectors = np.array([s["embedding"] for s in samples])
        assert vectors.shape == (len(samples), 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        times = [s["t"] for s in samples]
        assert times == sorted(set(times))
        assert tracklet["start"] <= times[0] and times[-1] <= tracklet["end"]
    samples = _tracklets(batches)[1]["samples"]
    assert len(samples) == 5
    assert {s["quality"] for s in _tracklets(batches)[2]["samples"]} == {0.5}  # conf -1
    assert {s["quality"] for s in samples} == {0.95}  # the best of each stretch


def test_keyframes_are_small_jpeg_crops(batches: list[dict[str, Any]]) -> None:
    tracklets = _tracklets(batches)
    for tracklet in tracklets.values():
        assert 1 <= len(tracklet["keyframes"]) <= 3
        for keyframe in tracklet["keyframes"]:
            image = Image.open(io.BytesIO(base64.b64decode(keyframe["jpeg_b64"])))
            assert image.format == "JPEG"
            assert max(image.size) <= 256
    first = tracklets[1]["keyframes"][0]
    assert first["t"] == tracklets[1]["start"]
    assert first["bbox"] == [0.0, 40.0, 30.0, 30.0]  # clamped to the frame's left edge
    wide = Image.open(io.BytesIO(base64.b64decode(tracklets[3]["keyframes"][0]["jpeg_b64"])))
    assert wide.size == (256, 110)  # the 280 x 120 crop, shrunk


def test_observations_are_thinned_evenly(sequence: Sequence, embedder: Embedder) -> None:
    batches = _batches(sequence, embedder, max_samples=1, max_keyframes=0, max_observations=4)
    tracklet = _tracklets(batches)[2]
    assert [o["t"] for o in tracklet["observations"]] == [_at(f) for f in (1, 9, 16, 24)]
    assert tracklet["keyframes"] == []
    assert len(tracklet["samples"]) == 1


def test_batches_pass_the_ingest_once(batches: list[dict[str, Any]], tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), Settings(retention_enabled=False))
    candidates = [parse_json(json.dumps(b).encode(), b["batch_id"]) for b in batches]
    report = ingest(record, candidates)
    assert report.count("accepted") == len(batches) == 2, report.outcomes
    tracklets = record.table("tracklets").to_lance().to_table().to_pylist()
    assert sorted((t["track_id"], t["camera_id"], t["pen_id"]) for t in tracklets) == [
        (f"cam2-mot-20261120T065958-{n:06d}", "cam2", "pen-3") for n in (1, 2, 3)
    ]
    starts = {t["track_id"][-1]: t["start"] for t in tracklets}
    assert starts["3"] == START + timedelta(seconds=2.4)
    observations = record.table("observations").to_lance().to_table()
    assert observations.num_rows == N_FRAMES - len(GAP) + 24 + 16
    again = ingest(record, candidates)
    assert again.count("duplicate") == len(batches)


def test_mot_batches_refuses_boxes_without_a_frame_image(
    sequence: Sequence, embedder: Embedder
) -> None:
    frames = frame_files(sequence.img1)
    del frames[7]
    with pytest.raises(InvalidInput, match=r"1 frames with boxes have no image \(first: frame 7\)"):
        _batches(sequence, embedder, frames)


def test_mot_batches_needs_an_aware_start(sequence: Sequence, embedder: Embedder) -> None:
    with pytest.raises(InvalidInput, match="has no UTC offset"):
        _batches(sequence, embedder, start=START.replace(tzinfo=None))


def test_a_record_pinned_to_other_weights_refuses_the_batches(
    batches: list[dict[str, Any]], tmp_path: Path
) -> None:
    record = create_record(str(tmp_path / "herd"), Settings(retention_enabled=False))
    record.pin_embedder("0" * 64)
    candidates = [parse_json(json.dumps(b).encode(), b["batch_id"]) for b in batches]
    report = ingest(record, candidates)
    assert report.count("rejected") == len(batches)
    assert (
        "embedder: the record holds dinov3-vits16/384 (weights 000000000000)"
        in (report.outcomes[0].problems[0])
    )


def test_import_mot_command_ingests_and_links_the_sequence(
    sequence: Sequence, weights: Path, tmp_path: Path
) -> None:
    path = tmp_path / "herd"
    create_record(str(path), Settings(retention_enabled=False))
    arguments = [
        "import-mot",
        str(path),
        "--tracks",
        str(sequence.tracks_file),
        "--frames",
        str(sequence.img1),
        "--pen",
        "pen-3",
        "--camera",
        "cam2",
        "--device",
        "dev-09",
        "--weights",
        str(weights),
        "--start",
        START.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "--fps",
        str(FPS),
        "--out",
        str(tmp_path / "batches"),
    ]
    first = CliRunner().invoke(cli_app, arguments)
    assert first.exit_code == 0, first.output
    record = open_record(str(path))
    assert record.table("tracklets").count_rows() == 3
    assert record.table("links").count_rows() >= 3  # linked as the edge's own
    assert len(list((tmp_path / "batches").glob("*.json.gz"))) == 2
    again = CliRunner().invoke(cli_app, arguments)
    assert again.exit_code == 0 and record.table("tracklets").count_rows() == 3
    missing = CliRunner().invoke(cli_app, [*arguments[:4], str(tmp_path / "nope"), *arguments[5:]])
    assert missing.exit_code != 0 and "Traceback" not in missing.output
