"""Tests of the herd simulator: determinism, the edge batch contract, ground truth, figures."""

from __future__ import annotations

import base64
import gzip
import io
import itertools
import json
import math
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from herdrecord.config import Settings
from herdrecord.contract.frames import frames_from_model
from herdrecord.contract.models import EdgeBatch
from herdrecord.contract.rules import Expectations, check_frames
from herdrecord.errors import InvalidInput
from herdrecord.simulation import (
    Simulation,
    SimulationConfig,
    iter_batches,
    simulate,
    write_simulation,
)
from herdrecord.store.schema import DEFAULT_BEHAVIOURS

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
LYING = ("lying_lateral_min", "lying_sternal_min")
MINUTE_COLUMNS = tuple(f"{b}_min" for b in DEFAULT_BEHAVIOURS)

# A small barn: fast, but with every kind of thing in it.
SMALL = SimulationConfig(
    animals=16,
    pens=2,
    days=5,
    seed=7,
    cameras_per_pen=2,
    initial_weight_kg=(40.0, 112.0),  # the heavier pen starts selling within the week
    arrival_rate_per_day=0.5,
    move_rate_per_day=0.05,
    lameness_rate_per_day=0.03,
    disease_rate_per_day=0.02,
    outage_rate=0.03,
)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    """Return the small barn, simulated once for the module."""
    return simulate(SMALL)


@pytest.fixture(scope="module")
def herd() -> Simulation:
    """Return a grow-finish herd over 8 days without keyframes, for figures and re-ID."""
    return simulate(
        SimulationConfig(animals=24, pens=3, days=8, seed=1, keyframes=False, obs_interval_s=60.0)
    )


def _tracklets(sim: Simulation) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(batch, trk) for batch in sim.batches for trk in batch["tracklets"]]


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _truth_by_key(sim: Simulation) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["device_id"], r["track_id"]): r for r in sim.truth_tracklets.to_pylist()}


# --- determinism -----------------------------------------------------------------------


def test_same_config_gives_identical_batches_and_another_seed_does_not() -> None:
    config = SimulationConfig(animals=6, pens=2, days=1, seed=3)
    first = simulate(config)
    again = simulate(config)
    assert again.batches == first.batches
    assert again.truth_tracklets.equals(first.truth_tracklets)
    assert again.truth_events.equals(first.truth_events)
    other = simulate(SimulationConfig(animals=6, pens=2, days=1, seed=4))
    assert other.batches != first.batches


def test_streamed_batches_equal_the_whole_run() -> None:
    config = SimulationConfig(animals=6, pens=2, days=2, seed=2)
    assert list(iter_batches(config)) == simulate(config).batches


def test_written_files_are_byte_identical_across_runs(tmp_path: Path) -> None:
    config = SimulationConfig(animals=4, pens=1, days=1, seed=1)
    a = write_simulation(simulate(config), tmp_path / "a")
    b = write_simulation(simulate(config), tmp_path / "b")
    assert [p.name for p in a.batch_files] == [p.name for p in b.batch_files]
    for pa_, pb in zip(a.batch_files, b.batch_files, strict=True):
        assert pa_.read_bytes() == pb.read_bytes()


# --- the edge batch contract -------------------------------------------------------------


def test_every_batch_follows_the_contract(sim: Simulation) -> None:
    dim = SMALL.embedding_dim
    for batch in sim.batches:
        assert batch["schema"] == "herdrecord.edge-batch/1"
        assert batch["embedder"] == {"name": "dinov3-vits16", "dim": dim}
        assert batch["batch_id"].startswith(batch["device_id"] + "/")
        track_ids = [t["track_id"] for t in batch["tracklets"]]
        assert len(track_ids) == len(set(track_ids))
        for trk in batch["tracklets"]:
            start, end = _t(trk["start"]), _t(trk["end"])
            assert end >= start
            assert len(trk["samples"]) >= 1
            children = trk["samples"] + trk["observations"] + trk["keyframes"]
            for child in children:
                assert RFC3339_Z.match(child["t"])
                assert start <= _t(child["t"]) <= end
            for s in trk["samples"]:
                assert len(s["embedding"]) == dim
                assert all(isinstance(v, float) and math.isfinite(v) for v in s["embedding"])
                assert 0.3 <= s["quality"] <= 1.0
            for o in trk["observations"]:
                assert o["behaviour"] in DEFAULT_BEHAVIOURS
                assert 0.0 <= o["behaviour_conf"] <= 1.0
                assert o["area_px"] >= 0 and o["speed_px_s"] >= 0
                assert o["bbox"][2] > 0 and o["bbox"][3] > 0
                assert o["gait_score"] is None or 0.0 <= o["gait_score"] <= 3.0
            for k in trk["keyframes"]:
                assert k["bbox"][2] > 0 and k["bbox"][3] > 0


def test_batches_pass_the_records_own_validation(sim: Simulation) -> None:
    expect = Expectations.for_record(
        "dinov3-vits16", SMALL.embedding_dim, DEFAULT_BEHAVIOURS, Settings()
    )
    for batch in sim.batches[::12]:
        model = EdgeBatch.model_validate(json.loads(json.dumps(batch)))
        assert check_frames(frames_from_model(model), expect) == []


def test_a_tracklet_sits_in_the_window_holding_its_start_and_ids_never_repeat(
    sim: Simulation,
) -> None:
    window_h = 24 // SMALL.batches_per_day
    seen: set[tuple[str, str]] = set()
    for batch, trk in _tracklets(sim):
        hour = int(batch["batch_id"].rsplit("T", 1)[1])
        start = _t(trk["start"])
        assert batch["batch_id"].split("/")[1][:10] == start.date().isoformat()
        assert hour <= start.hour < hour + window_h
        key = (batch["device_id"], trk["track_id"])
        assert key not in seen
        seen.add(key)


# --- ground truth ------------------------------------------------------------------------


def test_every_tracklet_is_in_the_ground_truth(sim: Simulation) -> None:
    truth = _truth_by_key(sim)
    assert len(truth) == sim.truth_tracklets.num_rows == len(_tracklets(sim))
    for batch, trk in _tracklets(sim):
        row = truth[(batch["device_id"], trk["track_id"])]
        assert row["batch_id"] == batch["batch_id"]
        assert row["pen_id"] == trk["pen_id"] and row["camera_id"] == trk["camera_id"]
        assert row["start"] == _t(trk["start"]) and row["end"] == _t(trk["end"])
        assert row["n_observations"] == len(trk["observations"])


def test_an_animal_is_in_one_pen_a_day_and_its_tracklets_never_overlap(sim: Simulation) -> None:
    days = sim.truth_days.to_pylist()
    assert len({(r["animal_id"], r["day"]) for r in days}) == len(days)
    pen_of = {(r["animal_id"], r["day"]): r["pen_id"] for r in days}
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for row in sim.truth_tracklets.to_pylist():
        assert pen_of[(row["animal_id"], row["start"].date())] == row["pen_id"]
        spans[row["animal_id"]].append((row["start"], row["end"]))
    for intervals in spans.values():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start > end


def test_tracklets_overlap_in_time_within_a_pen(sim: Simulation) -> None:
    rows = sorted(sim.truth_tracklets.to_pylist(), key=lambda r: (r["pen_id"], r["start"]))
    overlapping = sum(
        a["pen_id"] == b["pen_id"] and b["start"] < a["end"] and a["animal_id"] != b["animal_id"]
        for a, b in itertools.pairwise(rows)
    )
    assert overlapping > len(rows) // 4


def test_continuations_start_seconds_later_near_where_the_last_ended(sim: Simulation) -> None:
    by_animal: dict[str, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
    truth = _truth_by_key(sim)
    for batch, trk in _tracklets(sim):
        animal = truth[(batch["device_id"], trk["track_id"])]["animal_id"]
        by_animal[animal].append((_t(trk["start"]), trk))
    gaps, near = 0, 0
    for items in by_animal.values():
        items.sort(key=lambda item: item[0])
        for (_, a), (_, b) in itertools.pairwise(items):
            gap_s = (_t(b["start"]) - _t(a["end"])).total_seconds()
            if gap_s <= 10 and a["camera_id"] == b["camera_id"]:
                gaps += 1
                ax, ay, aw, ah = a["observations"][-1]["bbox"]
                bx, by, bw, bh = b["observations"][0]["bbox"]
                near += math.hypot(ax + aw / 2 - bx - bw / 2, ay + ah / 2 - by - bh / 2) < 80
    assert gaps > 0.3 * sim.truth_tracklets.num_rows
    assert near > 0.8 * gaps


def test_tracklets_per_animal_day_are_in_range(herd: Simulation) -> None:
    per_day = herd.truth_tracklets.num_rows / herd.truth_days.num_rows
    assert 10 <= per_day <= 40


def test_events_cover_health_and_production(sim: Simulation) -> None:
    events = sim.truth_events.to_pylist()
    kinds = {e["kind"] for e in events}
    assert {"weight", "lameness", "diagnosis", "treatment", "move", "arrival", "sale"} <= kinds
    for e in events:
        if e["kind"] == "lameness":
            assert e["scale"] == "0-3" and e["value"] in (0.0, 1.0, 2.0, 3.0)
        if e["kind"] == "diagnosis":
            assert e["code"] in {"PRRS", "MHYO", "FLU", "ECOLI", "BRACHY", "STREP", "GLAESSER",
                                 "INJURY"}  # fmt: skip
        if e["kind"] == "weight":
            assert 10.0 < e["value"] < 150.0


def test_moves_happen_at_midnight_and_change_the_pen(sim: Simulation) -> None:
    pens = {(r["animal_id"], r["day"]): r["pen_id"] for r in sim.truth_days.to_pylist()}
    moves = [e for e in sim.truth_events.to_pylist() if e["kind"] == "move"]
    assert moves
    for move in moves:
        assert move["at"].time().isoformat() == "00:00:00"
        assert pens[(move["animal_id"], move["at"].date())] == move["code"]


def test_departed_animals_leave_no_tracklets_after_leaving(sim: Simulation) -> None:
    left = {
        e["animal_id"]: e["at"]
        for e in sim.truth_events.to_pylist()
        if e["kind"] in ("sale", "death")
    }
    arrived = {
        e["animal_id"]: e["at"] for e in sim.truth_events.to_pylist() if e["kind"] == "arrival"
    }
    assert left and arrived
    for row in sim.truth_tracklets.to_pylist():
        assert row["end"] <= left.get(row["animal_id"], datetime.max.replace(tzinfo=UTC))
        assert row["start"] >= arrived.get(row["animal_id"], datetime.min.replace(tzinfo=UTC))
    departed = sim.truth_animals.filter(pc.is_valid(sim.truth_animals["departure_date"]))
    assert set(departed["animal_id"].to_pylist()) == set(left)


# --- figures -----------------------------------------------------------------------------


def _gains_kg_per_day(days: pa.Table) -> list[float]:
    series: dict[str, list[tuple[Any, float]]] = defaultdict(list)
    for r in days.to_pylist():
        series[r["animal_id"]].append((r["day"], r["weight_kg"]))
    gains = []
    for points in series.values():
        if len(points) >= 7:
            points.sort()
            gains.append((points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0]).days)
    return gains


def test_grow_finish_daily_gain_is_realistic(herd: Simulation) -> None:
    gains = _gains_kg_per_day(herd.truth_days)
    assert 0.6 <= float(np.mean(gains)) <= 1.1
    assert min(gains) >= 0.3 and max(gains) <= 1.4


def test_scale_weights_follow_true_weights(herd: Simulation) -> None:
    true_kg = {(r["animal_id"], r["day"]): r["weight_kg"] for r in herd.truth_days.to_pylist()}
    weighings = [e for e in herd.truth_events.to_pylist() if e["kind"] == "weight"]
    errors = [e["value"] - true_kg[(e["animal_id"], e["at"].date())] for e in weighings]
    assert len(weighings) >= 40
    assert abs(float(np.mean(errors))) < 0.3 and float(np.std(errors)) < 1.0


def test_area_grows_with_weight_to_the_two_thirds(herd: Simulation) -> None:
    truth = _truth_by_key(herd)
    weight = {(r["animal_id"], r["day"]): r["weight_kg"] for r in herd.truth_days.to_pylist()}
    xs, ys = [], []
    for batch, trk in _tracklets(herd)[::7]:
        row = truth[(batch["device_id"], trk["track_id"])]
        for o in trk["observations"]:
            if o["behaviour"] == "standing":
                xs.append(math.log(weight[(row["animal_id"], row["start"].date())]))
                ys.append(math.log(o["area_px"]))
    slope = float(np.polyfit(xs, ys, 1)[0])
    assert 0.55 < slope < 0.8


def test_pigs_lie_most_of_the_day_and_most_at_night(herd: Simulation) -> None:
    days = herd.truth_days.filter(pc.equal(herd.truth_days["present_min"], 1440.0))
    lying = np.array(days[LYING[0]]) + np.array(days[LYING[1]])
    assert 0.60 <= float(np.mean(lying / 1440.0)) <= 0.85
    total = sum(np.array(days[c]) for c in MINUTE_COLUMNS)
    assert np.allclose(total, 1440.0, atol=0.5)
    night, morning = [], []
    for _, trk in _tracklets(herd)[::3]:
        for o in trk["observations"]:
            hour = int(o["t"][11:13])
            if hour < 4:
                night.append(o["behaviour"].startswith("lying"))
            elif 7 <= hour < 9:
                morning.append(o["behaviour"] == "eating")
    assert np.mean(night) > 0.85
    assert np.mean(morning) > 0.15


def test_lame_animals_lie_more_walk_less_and_gait_worse() -> None:
    config = SimulationConfig(
        animals=24, pens=2, days=8, seed=5, keyframes=False, lameness_rate_per_day=0.06,
        obs_interval_s=60.0, embedding_dim=16,
    )  # fmt: skip
    sim = simulate(config)
    days = sim.truth_days.filter(pc.equal(sim.truth_days["present_min"], 1440.0))
    lame = np.array(days["lame"])
    lying = np.array(days[LYING[0]]) + np.array(days[LYING[1]])
    walking = np.array(days["walking_min"])
    assert lame.sum() >= 10
    assert lying[lame].mean() > lying[~lame].mean() + 30
    assert walking[lame].mean() < walking[~lame].mean()
    lame_on = {(r["animal_id"], r["day"]): r["lame"] for r in days.to_pylist()}
    truth = _truth_by_key(sim)
    gait: dict[bool, list[float]] = {True: [], False: []}
    for batch, trk in _tracklets(sim):
        row = truth[(batch["device_id"], trk["track_id"])]
        is_lame = lame_on.get((row["animal_id"], row["start"].date()))
        for o in trk["observations"]:
            if o["gait_score"] is not None and is_lame is not None:
                gait[is_lame].append(o["gait_score"])
    assert np.mean(gait[True]) > np.mean(gait[False]) + 0.5


def test_tag_reads_are_about_one_percent_and_name_the_right_animal(herd: Simulation) -> None:
    tags = dict(
        zip(
            herd.truth_animals["animal_id"].to_pylist(),
            herd.truth_animals["tag_id"].to_pylist(),
            strict=True,
        )
    )
    truth = _truth_by_key(herd)
    read = 0
    for batch, trk in _tracklets(herd):
        if trk["tag_id"] is None:
            continue
        read += 1
        assert trk["tag_id"] == tags[truth[(batch["device_id"], trk["track_id"])]["animal_id"]]
    assert 0.005 <= read / herd.truth_tracklets.num_rows <= 0.02


def test_camera_outages_leave_camera_hours_without_tracklets() -> None:
    def silent_hours(rate: float) -> int:
        config = SimulationConfig(animals=8, pens=1, days=2, keyframes=False, outage_rate=rate)
        covered: set[tuple[str, int, int]] = set()
        for row in simulate(config).truth_tracklets.to_pylist():
            first = row["start"].day * 24 + row["start"].hour
            last = row["end"].day * 24 + row["end"].hour
            covered.update((row["camera_id"], h // 24, h % 24) for h in range(first, last + 1))
        return 2 * 24 - len(covered)

    assert silent_hours(0.0) == 0
    assert silent_hours(0.3) > 3


def test_keyframes_are_small_real_jpegs(sim: Simulation) -> None:
    keyframes = [k for _, trk in _tracklets(sim) for k in trk["keyframes"]]
    per_tracklet = [len(trk["keyframes"]) for _, trk in _tracklets(sim)]
    assert set(per_tracklet) <= {1, 2}
    for k in keyframes[::25]:
        data = base64.b64decode(k["jpeg_b64"])
        assert len(data) < 5_000
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.size == SMALL.keyframe_size_px


def test_keyframes_can_be_turned_off() -> None:
    config = SimulationConfig(animals=4, pens=1, days=1, keyframes=False)
    assert all(not trk["keyframes"] for _, trk in _tracklets(simulate(config)))


# --- appearance --------------------------------------------------------------------------


def _samples(sim: Simulation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return sample embeddings (n, dim), their animal index (n,) and tracklet index (n,)."""
    truth = _truth_by_key(sim)
    vectors, animals, tracklets = [], [], []
    for i, (batch, trk) in enumerate(_tracklets(sim)):
        animal = truth[(batch["device_id"], trk["track_id"])]["animal_id"]
        for s in trk["samples"]:
            vectors.append(s["embedding"])
            animals.append(animal)
            tracklets.append(i)
    _, index = np.unique(np.array(animals), return_inverse=True)
    return np.array(vectors, dtype=np.float32), index, np.array(tracklets)


def _centroids(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    c = np.stack([x[y == k].mean(axis=0) for k in range(int(y.max()) + 1)])
    return np.asarray(c / np.linalg.norm(c, axis=1, keepdims=True))


def test_nearest_true_centroid_is_high_and_sample_nearest_neighbour_is_worse(
    herd: Simulation,
) -> None:
    x, y, tracklet = _samples(herd)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-3)
    centroid_acc = float(np.mean(np.argmax(x @ _centroids(x, y).T, axis=1) == y))
    chance = 1.0 / (int(y.max()) + 1)
    queries = np.random.default_rng(0).choice(len(x), 1500, replace=False)
    sim_ = x[queries] @ x.T
    sim_[tracklet[queries][:, None] == tracklet[None, :]] = -2.0  # not its own tracklet
    nn_acc = float(np.mean(y[np.argmax(sim_, axis=1)] == y[queries]))
    assert centroid_acc > 0.93 > chance * 10
    assert nn_acc < centroid_acc - 0.2


def test_near_twins_are_closer_than_typical_pairs(herd: Simulation) -> None:
    x, y, _ = _samples(herd)
    ids = np.unique([r["animal_id"] for r in herd.truth_tracklets.to_pylist()])
    position = {a: i for i, a in enumerate(ids)}
    centroids = _centroids(x, y)
    pairs = [
        (position[a], position[b])
        for a, b in zip(
            herd.truth_animals["animal_id"].to_pylist(),
            herd.truth_animals["twin_of"].to_pylist(),
            strict=True,
        )
        if b is not None and a in position and b in position
    ]
    assert pairs
    cosine = centroids @ centroids.T
    typical = float(np.median(cosine[np.triu_indices(len(ids), 1)]))
    for a, b in pairs:
        assert cosine[a, b] > typical + 0.1


def test_low_quality_samples_are_noisier(herd: Simulation) -> None:
    x, y, _ = _samples(herd)
    quality = np.array([s["quality"] for _, trk in _tracklets(herd) for s in trk["samples"]])
    distance = 1.0 - np.sum(x * _centroids(x, y)[y], axis=1)
    assert np.corrcoef(quality, distance)[0, 1] < -0.4


# --- stress conditions -------------------------------------------------------------------

# A one-pen barn for the stress conditions: fast, no keyframes, small embeddings.
STRESS = {
    "animals": 10, "pens": 1, "days": 1, "seed": 4, "keyframes": False, "obs_interval_s": 60.0,
    "embedding_dim": 16, "arrival_rate_per_day": 0.0, "outage_rate": 0.0,
}  # fmt: skip


def _stress(**overrides: Any) -> Simulation:
    return simulate(SimulationConfig(**{**STRESS, **overrides}))


def _gaps_s(sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    """Return the gaps between an animal's consecutive tracklets, s, and whether it lay
    (by the edge's last behaviour) when the earlier one ended."""
    truth = _truth_by_key(sim)
    by_animal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for batch, trk in _tracklets(sim):
        by_animal[truth[(batch["device_id"], trk["track_id"])]["animal_id"]].append(trk)
    gaps, lying = [], []
    for items in by_animal.values():
        items.sort(key=lambda trk: trk["start"])
        for a, b in itertools.pairwise(items):
            gaps.append((_t(b["start"]) - _t(a["end"])).total_seconds())
            lying.append(a["observations"][-1]["behaviour"].startswith("lying"))
    return np.array(gaps), np.array(lying)


def test_reacquisition_gaps_are_lognormal_around_their_median_and_longer_when_lying() -> None:
    gaps, _ = _gaps_s(_stress(continuation_share=1.0, reacquire_gap_median_s=30.0))
    assert len(gaps) > 100
    assert 25.0 <= float(np.median(gaps)) <= 36.0  # whole-second ends add ~1 s
    assert float(np.quantile(gaps, 0.9)) > 2.5 * float(np.median(gaps))  # a long tail
    gaps, lying = _gaps_s(
        _stress(continuation_share=1.0, reacquire_gap_median_s=10.0, reacquire_lying_factor=4.0)
    )
    assert float(np.median(gaps[lying])) > 2.5 * float(np.median(gaps[~lying]))


@pytest.mark.parametrize("most", [1, 2, 3])
def test_samples_per_tracklet_can_be_capped_low(most: int) -> None:
    counts = [len(trk["samples"]) for _, trk in _tracklets(_stress(samples_per_tracklet_max=most))]
    assert max(counts) == most and min(counts) == 1


def _crowded_lying_share(sim: Simulation) -> float:
    """Return the share of night-time lying observations with three or more pen-mates lying
    within two body widths (within a minute)."""
    truth = _truth_by_key(sim)
    rows = []  # seconds into the day, animal, x, y, body width
    for batch, trk in _tracklets(sim):
        animal = truth[(batch["device_id"], trk["track_id"])]["animal_id"]
        for o in trk["observations"]:
            t = _t(o["t"])
            if o["behaviour"].startswith("lying") and t.hour < 5:
                x, y, w, h = o["bbox"]
                rows.append((t.hour * 3600 + t.minute * 60 + t.second, animal, x + w / 2,
                             y + h / 2, 0.71 * math.sqrt(o["area_px"])))  # fmt: skip
    at = np.array([r[0] for r in rows])
    animal = np.array([r[1] for r in rows])
    xy = np.array([r[2:4] for r in rows])
    crowded = []
    for i in range(0, len(rows), 5):
        near = (np.abs(at - at[i]) <= 60) & (animal != animal[i])
        close = np.hypot(*(xy[near] - xy[i]).T) < 2.0 * rows[i][4]
        crowded.append(len(set(animal[near][close])) >= 3)
    return float(np.mean(crowded))


def test_clumped_pigs_lie_within_two_body_widths_of_each_other() -> None:
    assert _crowded_lying_share(_stress(clump_share=1.0)) > 0.7
    assert _crowded_lying_share(_stress()) < 0.2


def _first_and_last_day_similarity(sim: Simulation) -> float:
    """Return the mean cosine of each animal's first-day and last-day sample centroids."""
    x, y, tracklet = _samples(sim)
    day = np.array([_t(trk["start"]).day for _, trk in _tracklets(sim)])[tracklet]
    for d in np.unique(day):  # the day's light and the breed look are common to all
        x[day == d] -= x[day == d].mean(axis=0)
    cosines = []
    for k in range(int(y.max()) + 1):
        ends = [x[(y == k) & (day == d)].mean(axis=0) for d in (day.min(), day.max())]
        cosines.append(float(ends[0] @ ends[1] / np.linalg.norm(ends[0]) / np.linalg.norm(ends[1])))
    return float(np.mean(cosines))


def test_a_wandering_look_changes_a_pig_over_weeks() -> None:
    weeks = {"days": 14, "obs_interval_s": 300.0, "embedding_dim": 384, "animals": 6}
    still = _first_and_last_day_similarity(_stress(**weeks))
    wandered = _first_and_last_day_similarity(_stress(**weeks, drift_walk_norm=0.4))
    assert wandered < still - 0.2


def test_overlapping_cameras_track_the_same_animal_twice_at_once_in_mirrored_frames() -> None:
    config = SimulationConfig(**{**STRESS, "cameras_per_pen": 2, "camera_overlap_share": 0.3})
    sim = simulate(config)
    assert sim.overlapping_cameras == [("pen-1", "cam1", "cam2")]
    truth = _truth_by_key(sim)
    by_animal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for batch, trk in _tracklets(sim):
        by_animal[truth[(batch["device_id"], trk["track_id"])]["animal_id"]].append(trk)
    twin_s, all_s, mirrored, compared = 0.0, 0.0, 0, 0
    for items in by_animal.values():
        for a, b in itertools.combinations(items, 2):
            lo, hi = max(_t(a["start"]), _t(b["start"])), min(_t(a["end"]), _t(b["end"]))
            if hi <= lo:
                continue
            assert a["camera_id"] != b["camera_id"]
            twin_s += (hi - lo).total_seconds()
            at = {o["t"]: o["bbox"] for o in a["observations"]}
            for o in b["observations"]:
                if o["t"] in at:
                    ax, ay, aw, ah = at[o["t"]]
                    bx, by, bw, bh = o["bbox"]
                    compared += 1
                    mirrored += math.hypot(ax + aw / 2 + bx + bw / 2 - 1280,
                                           ay + ah / 2 + by + bh / 2 - 720) < 40  # fmt: skip
        all_s += sum((_t(t["end"]) - _t(t["start"])).total_seconds() for t in items)
    # Twins cover ~0.3 of each stretch: 0.3 / 1.3 of all tracked time is seen twice.
    assert 0.15 < twin_s / all_s < 0.3
    assert compared > 100 and mirrored > 0.9 * compared
    assert _stress(cameras_per_pen=2).overlapping_cameras == []


def test_identity_switches_hit_their_share_and_truth_names_the_majority_animal() -> None:
    sim = _stress(embedding_dim=384, identity_switch_share=0.05, days=2, sample_every_s=300.0)
    rows = sim.truth_tracklets.to_pylist()
    assert 0.03 <= np.mean([r["switched"] for r in rows]) <= 0.07
    assert all((r["switch_at"] is not None) == r["switched"] for r in rows)
    truth = _truth_by_key(sim)
    x, y, tracklet = _samples(sim)
    x = x - x.mean(axis=0)  # the breed look every pig shares would blur the centroids
    names = sorted({r["animal_id"] for r in rows})
    switched = np.array([truth[(b["device_id"], t["track_id"])]["switched"]
                         for b, t in _tracklets(sim)])[tracklet]  # fmt: skip
    centroids = _centroids(x[~switched], y[~switched])
    times = [_t(s["t"]) for _, trk in _tracklets(sim) for s in trk["samples"]]
    checked, right, jumped = 0, 0, 0
    for i, (batch, trk) in enumerate(_tracklets(sim)):
        row = truth[(batch["device_id"], trk["track_id"])]
        mine = np.flatnonzero(tracklet == i)
        before = np.array([times[j] < (row["switch_at"] or times[j]) for j in mine])
        if before.all() or not before.any():
            continue
        first, last = (names[int(np.argmax(centroids @ x[mine[side]].mean(axis=0)))]
                       for side in (before, ~before))  # fmt: skip
        n_before = sum(_t(o["t"]) < row["switch_at"] for o in trk["observations"])
        checked += 1
        jumped += first != last
        right += row["animal_id"] == (first if 2 * n_before >= len(trk["observations"]) else last)
    assert checked >= 5
    assert jumped >= 0.8 * checked and right >= 0.8 * checked


# --- breeding herd -----------------------------------------------------------------------


def test_breeding_sows_cycle_farrow_and_are_restless_in_heat() -> None:
    config = SimulationConfig(
        animals=0, pens=1, days=30, seed=2, keyframes=False, breeding=True, sows=16,
        arrival_rate_per_day=0.0, obs_interval_s=300.0, embedding_dim=16,
    )  # fmt: skip
    sim = simulate(config)
    kinds = defaultdict(list)
    for e in sim.truth_events.to_pylist():
        kinds[e["kind"]].append(e)
    for kind in ("oestrus", "insemination", "farrowing", "pregnancy_check", "weaning"):
        assert kinds[kind], kind
    assert all(4 <= e["value"] <= 30 for e in kinds["farrowing"])
    days = sim.truth_days.to_pylist()
    assert {r["sow_state"] for r in days} >= {"oestrus", "lactating", None}
    active = defaultdict(list)
    for r in days:
        active[r["sow_state"] == "oestrus"].append(r["walking_min"] + r["standing_min"])
    assert np.mean(active[True]) > 1.3 * np.mean(active[False])
    assert {r["role"] for r in sim.truth_animals.to_pylist()} == {"sow"}
    assert {b["device_id"] for b in sim.batches} == {"dev-02"}


# --- files and config --------------------------------------------------------------------


def test_write_simulation_keeps_truth_apart_from_batches(tmp_path: Path) -> None:
    config = SimulationConfig(animals=6, pens=2, days=2, seed=9, embedding_dim=32)
    sim = simulate(config)
    files = write_simulation(sim, tmp_path / "out")
    assert len(files.batch_files) == len(sim.batches)
    first = files.batches_dir / "dev-01_2026-09-01T00.json.gz"
    assert first in files.batch_files
    assert json.loads(gzip.decompress(first.read_bytes())) == json.loads(json.dumps(sim.batches[0]))
    assert pq.read_table(files.tracklets).num_rows == sim.truth_tracklets.num_rows
    assert pq.read_table(files.days).num_rows == sim.truth_days.num_rows
    assert pq.read_table(files.animals).num_rows == sim.truth_animals.num_rows
    assert pq.read_table(files.events).num_rows == sim.truth_events.num_rows
    assert json.loads(files.config.read_text())["seed"] == config.seed
    assert not list(files.batches_dir.glob("*.parquet"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pens", 0),
        ("days", 0),
        ("batches_per_day", 5),
        ("tag_read_rate", 1.5),
        ("animals", -1),
        ("reacquire_gap_median_s", 0.0),
        ("reacquire_lying_factor", 0.5),
        ("drift_walk_norm", -0.1),
        ("clump_share", 1.5),
        ("camera_overlap_share", 0.3),  # one camera per pen: nothing to overlap with
        ("identity_switch_share", -0.1),
    ],
)
def test_config_rejects_impossible_values(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=field):
        SimulationConfig(**{field: value})  # type: ignore[arg-type]


def test_the_simulated_barn_does_not_jump_at_midnight() -> None:
    sim = simulate(
        SimulationConfig(animals=12, pens=1, days=3, seed=4, keyframes=False, obs_interval_s=30.0)
    )
    truth = sim.truth_tracklets.to_pylist()
    by_key = {(r["device_id"], r["track_id"]): r["animal_id"] for r in truth}
    ends: dict[tuple[object, str], tuple[float, np.ndarray]] = {}
    starts: dict[tuple[object, str], tuple[float, np.ndarray]] = {}
    for batch in sim.batches:
        for t in batch["tracklets"]:  # type: ignore[attr-defined]
            animal = by_key[(batch["device_id"], t["track_id"])]
            for o in t["observations"]:
                at = np.datetime64(o["t"].replace("Z", "")).astype("datetime64[s]").astype(float)
                xy = np.array([o["bbox"][0] + o["bbox"][2] / 2, o["bbox"][1] + o["bbox"][3] / 2])
                day = int(at // 86_400)
                last = ends.get((animal, str(day)))
                if last is None or at > last[0]:
                    ends[(animal, str(day))] = (at, xy)
                first = starts.get((animal, str(day)))
                if first is None or at < first[0]:
                    starts[(animal, str(day))] = (at, xy)
    jumps = []
    for (animal, day), (at, xy) in ends.items():
        nxt = starts.get((animal, str(int(day) + 1)))
        if nxt is not None and nxt[0] - at < 300:
            jumps.append(float(np.linalg.norm(nxt[1] - xy)))
    assert len(jumps) >= 10
    assert np.median(jumps) < 60.0  # a lost pig is found about where it was lost
