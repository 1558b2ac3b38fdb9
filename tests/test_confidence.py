"""Link confidence means what it says: on a simulated barn, of the tracked time linked with
confidence about p, about p is linked right."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from conftest import service_settings
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.confidence import ScoreSpread
from herdrecord.linking.run import link_pending
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.record import create_record

# The linking matrix's default barn, smaller: the tracker loses pigs for ~15 s, up to 3
# samples a tracklet, a look that finds its pig among the day's ~0.89 of the time. (On weaker
# looks the error is larger: see docs/linking.md.)
SIM = SimulationConfig(
    animals=16,
    pens=2,
    days=5,
    seed=22,
    obs_interval_s=120.0,
    keyframes=False,
    reacquire_gap_median_s=15.0,
    samples_per_tracklet_max=3,
    identity_norm=0.31,
)


def _right_by_identity(true_id: list[str], predicted: list[str], seconds: np.ndarray) -> np.ndarray:
    """Return whether each link is right under the one-to-one matching of predicted ids to
    true animals that keeps the most tracked time (as IDF1 scores it)."""
    truths, t = np.unique(true_id, return_inverse=True)
    preds, p = np.unique(predicted, return_inverse=True)
    shared = np.zeros((len(preds), len(truths)))
    np.add.at(shared, (p, t), seconds)
    rows, cols = linear_sum_assignment(shared, maximize=True)
    mapped = np.full(len(preds), -1)
    mapped[rows] = cols
    return np.asarray(mapped[p] == t)


@pytest.mark.parametrize("seed", [22, 23])
def test_link_confidence_is_calibrated_on_a_simulated_barn(tmp_path: Path, seed: int) -> None:
    sim = simulate(dataclasses.replace(SIM, seed=seed))
    record = create_record(str(tmp_path / "herd"), service_settings(tmp_path))
    ingest(record, [parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in sim.batches])
    link_pending(record)
    truth = {
        (r["device_id"], r["track_id"]): str(r["animal_id"])
        for r in sim.truth_tracklets.select(["device_id", "track_id", "animal_id"]).to_pylist()
    }
    tracklets = record.read_visible("tracklets", ["device_id", "track_id", "start", "end"])
    seconds_of = {
        (r["device_id"], r["track_id"]): (r["end"] - r["start"]).total_seconds() + 1.0
        for r in tracklets.to_pylist()
    }
    links = [
        r
        for r in current_links(record).to_pylist()
        if r["animal_id"] is not None and r["confidence"] is not None
    ]
    keys = [(r["device_id"], r["track_id"]) for r in links]
    seconds = np.array([seconds_of[k] for k in keys])
    confidence = np.array([r["confidence"] for r in links])
    right = _right_by_identity([truth[k] for k in keys], [r["animal_id"] for r in links], seconds)
    assert len(links) > 0.75 * len(truth)  # all but the first day (every animal new)
    bins = np.minimum((confidence * 10).astype(int), 9)
    gap = 0.0
    for b in range(10):
        mine = bins == b
        if mine.any():
            share = seconds[mine].sum() / seconds.sum()
            said = np.average(confidence[mine], weights=seconds[mine])
            got = np.average(right[mine], weights=seconds[mine])
            gap += share * abs(said - got)
    assert gap <= 0.05, f"expected calibration error {gap:.3f}"
    sure = confidence >= 0.9
    assert np.average(right[sure], weights=seconds[sure]) >= 0.9


def test_a_near_twin_far_above_the_genuine_mean_does_not_halve_confidence() -> None:
    spread = ScoreSpread(chosen=[0.93, 0.92, 0.94, 0.95] * 5, others=[-0.2, -0.1, 0.0, -0.3] * 5)
    # Two identities and two look-alike animals, both scoring far above the genuine mean.
    scores = np.array([[0.97, 0.917], [0.914, 0.947]])
    probability = spread.probabilities(scores, np.array([0, 1]))
    assert np.all(probability > 0.9)
