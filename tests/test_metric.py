"""The metric linking learns from the record's own constraints (no labels) separates one pig's
tracklets from another's better than raw cosine, on a day it has not seen yet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import service_settings
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import Candidate, parse_json
from herdrecord.linking.assignment import centre_by_camera
from herdrecord.linking.learned_metric import (
    REFIT_GROWTH,
    _read_stats,
    average_ranks,
    stored_metric,
)
from herdrecord.linking.run import link_pending
from herdrecord.linking.tracklets import load_tracklets
from herdrecord.simulation import Simulation, SimulationConfig, simulate
from herdrecord.store.record import Record, create_record

# Posture and behaviour dominate the look: raw cosine is a poor identifier here.
SIM = SimulationConfig(
    animals=12,
    pens=2,
    days=4,
    seed=31,
    obs_interval_s=120.0,
    keyframes=False,
    reacquire_gap_median_s=15.0,
    samples_per_tracklet_max=3,
    identity_norm=0.31,
    posture_norm=1.0,
)


LAST_DAY = "2026-09-04"


def _auc(same: np.ndarray, different: np.ndarray) -> float:
    """Return the chance that a same-animal pair is more alike than a different-animal one."""
    ranks = np.argsort(np.argsort(np.concatenate([same, different]))) + 1
    return float(
        (ranks[: len(same)].sum() - len(same) * (len(same) + 1) / 2) / (len(same) * len(different))
    )


def _pair_similarities(
    record: Record, truth: dict[tuple[str, str], str], look
) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Return cosine similarities of same-animal and different-animal tracklet pairs within each
    pen-day (camera-day centred, as linking sees them), in the space `look` maps to."""
    data = load_tracklets(record, None)
    same: list[np.ndarray] = []
    different: list[np.ndarray] = []
    for _, rows in data.pen_days():
        x = centre_by_camera(data.pen_day(rows)).descriptor
        x = look(x) if look is not None else x / np.linalg.norm(x, axis=1, keepdims=True)
        animal = np.array([truth[(data.device_id[r], data.track_id[r])] for r in rows])
        sim = x @ x.T
        upper = np.triu(np.ones_like(sim, dtype=bool), k=1)
        same.append(sim[upper & (animal[:, None] == animal[None, :])])
        different.append(sim[upper & (animal[:, None] != animal[None, :])])
    return np.concatenate(same), np.concatenate(different)


def _linked_but_the_last_day(tmp_path: Path) -> tuple[Simulation, Record, list[Candidate]]:
    """Return the barn, a record holding and linking every day of it but the last, and the
    last day's batches (not yet ingested)."""
    sim = simulate(SIM)
    record = create_record(str(tmp_path / "herd"), service_settings(tmp_path))
    batches = [parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in sim.batches]
    ingest(record, [b for b in batches if b.batch_id.split("/")[1][:10] < LAST_DAY])
    link_pending(record)
    return sim, record, [b for b in batches if b.batch_id.split("/")[1][:10] == LAST_DAY]


def test_the_learned_metric_separates_pigs_better_on_a_day_it_has_not_seen(tmp_path: Path) -> None:
    sim, record, last_day = _linked_but_the_last_day(tmp_path)
    metric = stored_metric(record)
    assert metric is not None, "linking learned a metric from the record's own constraints"
    assert metric.auc_learned > metric.auc_raw  # its own held-back pen-days, as stored
    ingest(record, last_day)
    rows = sim.truth_tracklets.select(["device_id", "track_id", "animal_id"]).to_pylist()
    truth = {(r["device_id"], r["track_id"]): str(r["animal_id"]) for r in rows}
    raw = _auc(*_pair_similarities(record, truth, None))
    learned = _auc(*_pair_similarities(record, truth, metric.apply))
    assert learned >= raw + 0.05, (raw, learned)


def test_a_run_that_adds_few_pairs_keeps_the_metric_and_its_pairs(tmp_path: Path) -> None:
    _, record, last_day = _linked_but_the_last_day(tmp_path)
    fitted = stored_metric(record)
    assert fitted is not None
    before = _read_stats(record, fitted.transform.shape[0])
    # One upload of the last day: a few pairs against the days the metric was fitted on.
    ingest(record, last_day[:1])
    link_pending(record)
    kept = stored_metric(record)
    after = _read_stats(record, fitted.transform.shape[0])
    assert kept is not None and kept.version == fitted.version
    assert np.array_equal(kept.transform, fitted.transform)
    assert after.n_same + after.n_different > before.n_same + before.n_different
    assert after.n_same + after.n_different < (1 + REFIT_GROWTH) * (
        fitted.same_pairs + fitted.different_pairs
    )


def test_average_ranks_are_scipy_s() -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 500):
        x = rng.integers(0, 20, n).astype(np.float64)  # many ties
        assert np.array_equal(average_ranks(x), rankdata(x))
