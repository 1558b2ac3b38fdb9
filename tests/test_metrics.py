"""Identity metrics: IDF1 by hand, against py-motmetrics, and open-set scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from herdrecord.linking.scoring import IdentityScores, OpenSetScores, idf1, open_set_scores


def test_perfect_linking_scores_one_whatever_the_names() -> None:
    scores = idf1(["a", "a", "b", "c"], ["p7", "p7", "p2", "p9"])
    assert scores == IdentityScores(idf1=1.0, idp=1.0, idr=1.0, idtp=4.0, idfp=0.0, idfn=0.0)


def test_one_predicted_identity_over_two_animals() -> None:
    # x maps to a (2 items) rather than b (1 item); the fourth item is unlinked.
    scores = idf1(["a", "a", "b", "b"], ["x", "x", "x", None])
    assert (scores.idtp, scores.idfp, scores.idfn) == (2.0, 1.0, 2.0)
    assert scores.idp == pytest.approx(2 / 3)
    assert scores.idr == pytest.approx(2 / 4)
    assert scores.idf1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))


def test_mapping_is_one_to_one_and_optimal() -> None:
    # Greedy would give x to a (3) and leave y with b (1): 4. The best is x->b, y->a: 2 + 3.
    truth = ["a", "a", "a", "b", "b", "a", "a", "a"]
    predicted = ["x", "x", "x", "x", "x", "y", "y", "y"]
    scores = idf1(truth, predicted)
    assert scores.idtp == 5.0
    assert scores.idfp == 3.0 and scores.idfn == 3.0


def test_a_split_animal_counts_only_its_larger_part() -> None:
    scores = idf1([1, 1, 1, 1], [10, 10, 10, 11])
    assert (scores.idtp, scores.idfp, scores.idfn) == (3.0, 1.0, 1.0)
    assert scores.idf1 == pytest.approx(0.75)


def test_weights_decide_the_mapping() -> None:
    truth = ["a", "b", "b"]
    predicted = ["x", "x", "x"]
    assert idf1(truth, predicted).idtp == 2.0  # x -> b by count
    scores = idf1(truth, predicted, weights=[10.0, 1.5, 2.0])
    assert scores.idtp == 10.0  # x -> a by observed seconds
    assert scores.idfp == 3.5 and scores.idfn == 3.5


def test_unknown_predictions_are_false_negatives_not_identities() -> None:
    truth = ["a", "a", "b", "b", "c"]
    for unknown in (None, "", float("nan")):
        scores = idf1(truth, np.array(["x", unknown, "y", "y", unknown], dtype=object))
        assert (scores.idtp, scores.idfp, scores.idfn) == (3.0, 0.0, 2.0)
        assert scores.idp == 1.0


def test_nothing_linked_has_no_precision() -> None:
    scores = idf1(["a", "b"], [None, None])
    assert scores.idf1 == 0.0 and scores.idr == 0.0 and math.isnan(scores.idp)


def test_mixed_label_types_are_distinct_identities() -> None:
    scores = idf1(np.array([1, "1", 1], dtype=object), np.array(["p", "q", "p"], dtype=object))
    assert scores.idtp == 3.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        idf1(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="missing labels"):
        idf1(["a", None], ["x", "y"])
    with pytest.raises(ValueError, match="non-negative"):
        idf1(["a", "b"], ["x", "y"], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="shape"):
        idf1(["a", "b"], ["x", "y"], weights=[1.0])


def noisy_linking(
    n_items: int, n_true: int, n_predicted: int, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.object_], NDArray[np.int64]]:
    """Return truth, predictions (half right, some unlinked) and integer weights per item."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_true, size=n_items)
    predicted = np.where(
        rng.random(n_items) < 0.5, truth % n_predicted, rng.integers(0, n_predicted, n_items)
    ).astype(object)
    predicted[rng.random(n_items) < 0.15] = None
    return truth, predicted, rng.integers(1, 4, size=n_items)


def test_many_items_and_identities() -> None:
    # 100k items, 1,000 true identities, each renamed: perfect, and solved per block.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 1_000, size=100_000)
    predicted = rng.permutation(1_000)[truth] + 5_000
    assert idf1(truth, predicted).idf1 == 1.0
    # Every item its own predicted identity: each true identity keeps one item.
    scores = idf1(truth, np.arange(100_000))
    assert scores.idtp == np.unique(truth).size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_idf1_matches_motmetrics(seed: int) -> None:
    mm = pytest.importorskip("motmetrics")
    truth, predicted, weights = noisy_linking(300, n_true=8, n_predicted=11, seed=seed)
    accumulator = mm.MOTAccumulator(auto_id=True)
    # Each item is one frame with one true object and, if linked, one hypothesis on top of
    # it (distance 0); an item of weight w is w identical frames. motmetrics 1.4 keeps ids
    # as floats, so the labels given to it are integers.
    for true_id, predicted_id, weight in zip(truth, predicted, weights, strict=True):
        for _ in range(int(weight)):
            if predicted_id is None:
                accumulator.update([int(true_id)], [], np.empty((1, 0)))
            else:
                accumulator.update([int(true_id)], [int(predicted_id)], [[0.0]])
    summary = mm.metrics.create().compute(
        accumulator, metrics=["idf1", "idp", "idr", "idtp", "idfp", "idfn"]
    )
    ours = idf1(truth, predicted, weights=weights)
    assert ours.idf1 == pytest.approx(float(summary["idf1"].iloc[0]), abs=1e-9)
    assert ours.idp == pytest.approx(float(summary["idp"].iloc[0]), abs=1e-9)
    assert ours.idr == pytest.approx(float(summary["idr"].iloc[0]), abs=1e-9)
    assert (ours.idtp, ours.idfp, ours.idfn) == (
        float(summary["idtp"].iloc[0]),
        float(summary["idfp"].iloc[0]),
        float(summary["idfn"].iloc[0]),
    )


def test_open_set_scores_by_hand() -> None:
    truth = ["k1", "k1", "n1", "n1", "n1", "n2", "n2", "n3", "k2"]
    predicted = ["A", "A", "E1", "E1", "E2", "E2", "E2", None, "E3"]
    scores = open_set_scores(
        truth,
        predicted,
        enrolled={"E1", "E2", "E3", "E4"},
        truly_new={"n1", "n2", "n3", "n4"},
    )
    # E1 -> n1, E2 -> n2 (2 of its 3 items), E3 -> k2 (known), E4 has no items.
    # n3 was seen but never enrolled; n4 was never seen, so it is not counted.
    assert scores == OpenSetScores(
        precision=2 / 4, recall=2 / 3, n_enrolled=4, n_truly_new=3, n_matched=2
    )


def test_a_newcomer_enrolled_twice_counts_once() -> None:
    scores = open_set_scores(
        ["n1", "n1", "n1", "n1"], ["E1", "E1", "E2", "E2"], {"E1", "E2"}, {"n1"}
    )
    assert (scores.precision, scores.recall) == (0.5, 1.0)


def test_open_set_majority_is_by_weight() -> None:
    truth = ["n1", "k1", "k1"]
    predicted = ["E1", "E1", "E1"]
    assert open_set_scores(truth, predicted, {"E1"}, {"n1"}).precision == 0.0
    weighted = open_set_scores(truth, predicted, {"E1"}, {"n1"}, weights=[30.0, 5.0, 5.0])
    assert weighted.precision == 1.0 and weighted.recall == 1.0


def test_open_set_ties_go_to_the_true_id_seen_first() -> None:
    assert open_set_scores(["n1", "k1"], ["E1", "E1"], {"E1"}, {"n1"}).n_matched == 1
    assert open_set_scores(["k1", "n1"], ["E1", "E1"], {"E1"}, {"n1"}).n_matched == 0


def test_open_set_with_nothing_enrolled_or_new() -> None:
    scores = open_set_scores(["k1", "k2"], ["A", "B"], set(), set())
    assert math.isnan(scores.precision) and math.isnan(scores.recall)
    assert scores.n_enrolled == 0 and scores.n_truly_new == 0
