"""The camera registry (overlapping views) and its use in linking: a twin, one animal seen at
once by a second camera, gets its host's animal, and the pen's head count is not doubled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import service_settings
from herdrecord.cli import app
from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.assignment import (
    PenDayTracklets,
    concurrent_cliques,
    maximal_cliques,
    solve,
)
from herdrecord.linking.cameras import camera_overlaps, set_overlap
from herdrecord.linking.run import link_pending
from herdrecord.linking.tracklets import TrackPath
from herdrecord.linking.twins import find_twins, stored_camera_maps
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.record import create_record, open_record

runner = CliRunner()

SIM = SimulationConfig(
    animals=8,
    pens=2,
    days=3,
    seed=5,
    cameras_per_pen=2,
    camera_overlap_share=0.3,
    keyframes=False,
    obs_interval_s=120.0,
)


def test_registry_round_trip(tmp_path: Path) -> None:
    record = create_record(str(tmp_path / "herd"), service_settings(tmp_path))
    assert camera_overlaps(record) == []
    assert set_overlap(record, "pen-1", "cam2", "cam1")
    assert not set_overlap(record, "pen-1", "cam1", "cam2"), "one pair, in either order"
    assert set_overlap(record, "pen-2", "cam3", "cam4")
    reopened = open_record(str(tmp_path / "herd"), service_settings(tmp_path))
    assert camera_overlaps(reopened) == [("pen-1", "cam1", "cam2"), ("pen-2", "cam3", "cam4")]
    assert set_overlap(reopened, "pen-1", "cam1", "cam2", overlapping=False)
    assert not set_overlap(reopened, "pen-1", "cam1", "cam2", overlapping=False)
    assert camera_overlaps(reopened) == [("pen-2", "cam3", "cam4")]


@pytest.mark.parametrize(
    ("pen", "a", "b", "message"),
    [
        ("", "cam1", "cam2", "pen id is empty"),
        ("pen-1", " ", "cam2", "camera id is empty"),
        ("pen-1", "cam1", "cam1", "two different cameras"),
    ],
)
def test_bad_pairs_are_refused(tmp_path: Path, pen: str, a: str, b: str, message: str) -> None:
    record = create_record(str(tmp_path / "herd"), service_settings(tmp_path))
    with pytest.raises(InvalidInput, match=message):
        set_overlap(record, pen, a, b)
    assert camera_overlaps(record) == []


def test_cameras_cli(tmp_path: Path) -> None:
    herd = str(tmp_path / "herd")
    assert runner.invoke(app, ["init", herd]).exit_code == 0
    result = runner.invoke(app, ["cameras", "overlap", herd, "pen-1", "cam1", "cam2"])
    assert result.exit_code == 0, result.output
    assert "cameras cam1 and cam2 overlap" in result.output
    assert f"herdrecord link {herd} --all" in result.output
    result = runner.invoke(app, ["cameras", "overlap", herd, "pen-1", "cam2", "cam1"])
    assert "already overlap" in result.output and "--all" not in result.output
    runner.invoke(app, ["cameras", "overlap", herd, "pen-2", "cam1", "cam2"])
    result = runner.invoke(app, ["cameras", "list", herd, "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows == [
        {"pen_id": p, "camera_id": "cam1", "other_camera_id": "cam2"} for p in ("pen-1", "pen-2")
    ]
    result = runner.invoke(app, ["cameras", "list", herd, "--format", "csv"])
    assert result.output.splitlines()[0] == '"pen_id","camera_id","other_camera_id"'
    result = runner.invoke(app, ["cameras", "separate", herd, "pen-2", "cam1", "cam2"])
    assert result.exit_code == 0 and "no longer overlap" in result.output
    result = runner.invoke(app, ["cameras", "list", herd])
    assert "pen-1" in result.output and "pen-2" not in result.output
    result = runner.invoke(app, ["cameras", "overlap", herd, "pen-1", "cam1", "cam1"])
    assert result.exit_code == 2
    assert "error: a camera pair needs two different cameras" in result.output
    assert len(result.output.strip().splitlines()) == 1, "one line, no traceback"


def test_twins_need_a_registered_pair_and_a_look_apart_from_chance() -> None:
    rng = np.random.default_rng(0)
    looks = rng.normal(size=(4, 32))
    # Camera 1 sees animals 0-3 all day; camera 2 sees animal 1 for an hour, then animal 3.
    animal = np.array([0, 1, 2, 3, 1, 3])
    descriptor = looks[animal] + 0.3 * rng.normal(size=(6, 32))
    t = PenDayTracklets(
        camera=np.array(["cam1"] * 4 + ["cam2"] * 2, dtype=object),
        start_s=np.array([0.0, 0.0, 0.0, 0.0, 100.0, 5000.0]),
        end_s=np.array([9000.0, 9000.0, 9000.0, 9000.0, 3700.0, 8000.0]),
        first_xy=np.zeros((6, 2)),
        last_xy=np.zeros((6, 2)),
        descriptor=(descriptor / np.linalg.norm(descriptor, axis=1, keepdims=True)).astype(
            np.float32
        ),
        weight=np.ones(6),
    )
    host = find_twins(t, {frozenset(("cam1", "cam2"))})
    assert host.tolist() == [-1, -1, -1, -1, 1, 3]
    assert (find_twins(t, {frozenset(("cam1", "cam3"))}) == -1).all(), "not a registered pair"
    # A tracklet that must be solved (a tag read) stays: its host goes in its place.
    eligible = np.array([True] * 5 + [False])
    assert find_twins(t, {frozenset(("cam1", "cam2"))}, eligible).tolist() == [-1, -1, -1, 5, 1, -1]


def test_a_twin_of_one_observation_is_found_where_its_host_stands() -> None:
    """The look of a one-observation tracklet is no better than chance; where it stands, under
    the camera map learned from the pairs that do look alike, tells its host."""
    rng = np.random.default_rng(3)
    n_animals, dim, hours = 6, 32, 8
    looks = rng.normal(size=(n_animals, dim))
    times = np.arange(0.0, hours * 3600.0, 60.0)
    walks = np.cumsum(rng.normal(0.0, 15.0, size=(n_animals, len(times), 2)), axis=1)
    walks = np.clip(walks + rng.uniform(100, 600, size=(n_animals, 1, 2)), 20, 700)

    def mirrored(xy: np.ndarray) -> np.ndarray:  # the far camera's view: half a turn
        return np.array([1280.0, 720.0]) - xy

    cameras, starts, ends, descriptors, paths = [], [], [], [], []
    for a in range(n_animals):  # camera 1 sees every animal all day
        cameras.append("cam1")
        starts.append(times[0])
        ends.append(times[-1])
        descriptors.append(looks[a] + 0.3 * rng.normal(size=dim))
        paths.append(TrackPath(t_s=times, xy=walks[a]))
    for a in range(n_animals):  # camera 2 sees each for an hour, looking like itself
        at = slice(60 * a, 60 * a + 60)
        cameras.append("cam2")
        starts.append(times[at][0])
        ends.append(times[at][-1])
        descriptors.append(looks[a] + 0.3 * rng.normal(size=dim))
        paths.append(TrackPath(t_s=times[at], xy=mirrored(walks[a, at])))
    for at, xy in ((420, mirrored(walks[2, 420])), (430, np.array([640.0, 40.0]))):
        # One observation each, a look of noise: animal 2's twin, then a stranger's place.
        cameras.append("cam2")
        starts.append(times[at])
        ends.append(times[at])
        descriptors.append(rng.normal(size=dim))
        paths.append(TrackPath(t_s=times[at : at + 1], xy=xy[None]))
    descriptor = np.array(descriptors)
    t = PenDayTracklets(
        camera=np.array(cameras, dtype=object),
        start_s=np.array(starts),
        end_s=np.array(ends),
        first_xy=np.array([p.xy[0] for p in paths]),
        last_xy=np.array([p.xy[-1] for p in paths]),
        descriptor=(descriptor / np.linalg.norm(descriptor, axis=1, keepdims=True)).astype(
            np.float32
        ),
        weight=np.ones(len(cameras)),
    )
    pairs = {frozenset(("cam1", "cam2"))}
    by_look = find_twins(t, pairs)
    assert by_look[n_animals : 2 * n_animals].tolist() == list(range(n_animals))
    assert by_look[-2] != 2, "one observation of noise: the look alone does not find its host"
    placed = find_twins(t, pairs, paths=paths)
    assert placed[n_animals : 2 * n_animals].tolist() == list(range(n_animals))
    assert placed[-2:].tolist() == [2, -1], "the twin stands where animal 2 is; nobody is there"


def _identities(tmp_path: Path, registered: bool) -> tuple[dict[tuple[str, str], str | None], int]:
    sim = simulate(SIM)
    record = create_record(str(tmp_path / "herd"), service_settings(tmp_path))
    if registered:
        for pen_id, a, b in sim.overlapping_cameras:
            set_overlap(record, pen_id, a, b)
    ingest(record, [parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in sim.batches])
    link_pending(record)
    rows = current_links(record).select(["device_id", "track_id", "animal_id"]).to_pylist()
    links = {(r["device_id"], r["track_id"]): r["animal_id"] for r in rows}
    return links, len(set(sim.truth_tracklets.column("animal_id").to_pylist()))


def test_registered_overlap_links_twins_to_their_host(tmp_path: Path) -> None:
    sim = simulate(SIM)
    truth = sim.truth_tracklets.to_pylist()
    # The twins, by the truth: on the other camera, of the same animal, at the same time.
    twins = []
    for a in truth:
        for b in truth:
            if (
                a["animal_id"] == b["animal_id"]
                and a["camera_id"] != b["camera_id"]
                and b["start"] <= a["start"] <= a["end"] <= b["end"]
                and (a["end"] - a["start"]) < (b["end"] - b["start"])
            ):
                twins.append(((a["device_id"], a["track_id"]), (b["device_id"], b["track_id"])))
    assert len(twins) > 300
    plain, true_animals = _identities(tmp_path / "plain", registered=False)
    links, _ = _identities(tmp_path / "registered", registered=True)
    assert len(links) == len(truth), "every tracklet, twins too, decided"
    same = sum(links[twin] is not None and links[twin] == links[host] for twin, host in twins)
    assert same >= 0.95 * len(twins)
    found = len({a for a in links.values() if a is not None})
    without = len({a for a in plain.values() if a is not None})
    assert found <= 0.75 * without, (found, without)
    assert found <= round(1.1 * true_animals), (found, true_animals)
    # The map each pen's cameras were found to share is kept: the far camera's view is the
    # first one turned half a turn, (x, y) -> (1280 - x, 720 - y).
    maps = stored_camera_maps(open_record(str(tmp_path / "registered" / "herd")))
    assert sorted(maps) == ["pen-1", "pen-2"]
    for by_pair in maps.values():
        (fitted,) = by_pair.values()
        h = fitted.homography / fitted.homography[2, 2]
        assert np.allclose(h, [[-1, 0, 1280], [0, -1, 720], [0, 0, 1]], rtol=0.02, atol=0.05)
        assert fitted.sigma_px < 5.0


def test_two_chains_of_one_animal_that_take_turns_are_not_held_apart() -> None:
    """Chain 0 (camera 1: 0-100 s and 200-300 s) and chain 1 (camera 2: 100-200 s and
    300-400 s) span the same hours and are never seen at once: one animal crossing between
    two views. Chain 2 runs beside both all along."""
    start = np.array([0.0, 200.0, 101.0, 301.0, 0.0])
    end = np.array([99.0, 299.0, 199.0, 399.0, 399.0])
    label = np.array([0, 0, 1, 1, 2])
    cliques = concurrent_cliques(start, end, label)
    assert max(len(c) for c in cliques) == 2, "the head count is two animals, not three"
    assert not any({0, 1} <= set(c) for c in cliques)
    # Both chains look like animal 0, chain 2 like animal 1: with span cliques chain 1
    # would have to be someone else; seen-together cliques let it be animal 0.
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    choice = solve(scores, np.zeros(3), np.zeros(3), 0.5, None, cliques)
    assert choice.tolist() == [0, 0, 1]
    spans = [
        c.tolist() for c in maximal_cliques(np.array([0.0, 101, 0]), np.array([299.0, 399, 399]))
    ]
    assert solve(scores, np.zeros(3), np.zeros(3), 0.5, None, spans).tolist()[1] != 0
