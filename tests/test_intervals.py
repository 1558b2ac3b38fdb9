"""Overlapping intervals found without an (n, n) matrix: the same answers, linear memory."""

from __future__ import annotations

import numpy as np

from herdrecord.linking.intervals import any_overlap, overlapping, overlapping_pairs, pair_cosines


def _intervals(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = np.round(rng.uniform(0, 1000, n))  # whole seconds: ties and touching ends
    return start, start + np.round(rng.exponential(30, n))


def test_overlapping_pairs_are_the_upper_triangle_of_the_matrix() -> None:
    for seed in range(5):
        start, end = _intervals(300, seed)
        matrix = (start[:, None] <= end[None, :]) & (start[None, :] <= end[:, None])
        want_i, want_j = np.nonzero(np.triu(matrix, k=1))
        i, j = overlapping_pairs(start, end)
        assert np.array_equal(i, want_i) and np.array_equal(j, want_j)
        assert overlapping(start, end, 7).tolist() == matrix[7].tolist()


def test_a_limit_samples_the_pairs_evenly_and_the_same_each_time() -> None:
    start, end = _intervals(2000, 1)
    i, j = overlapping_pairs(start, end)
    some_i, some_j = overlapping_pairs(start, end, limit=500)
    assert len(some_i) == 500
    assert set(zip(some_i.tolist(), some_j.tolist(), strict=True)) <= set(
        zip(i.tolist(), j.tolist(), strict=True)
    )
    again = overlapping_pairs(start, end, limit=500)
    assert np.array_equal(again[0], some_i) and np.array_equal(again[1], some_j)


def test_any_overlap_answers_as_the_matrix_does() -> None:
    start, end = _intervals(200, 2)
    matrix = (start[:, None] <= end[None, :]) & (start[None, :] <= end[:, None])
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = rng.choice(200, 3, replace=False)
        b = rng.choice(200, 4, replace=False)
        assert any_overlap(start, end, a, b) == bool(matrix[np.ix_(a, b)].any())


def test_pair_cosines_match_a_direct_product() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    i, j = rng.integers(0, 50, 100_000), rng.integers(0, 50, 100_000)
    assert np.allclose(pair_cosines(x, i, j), np.einsum("nd,nd->n", x[i], x[j]), atol=1e-5)
