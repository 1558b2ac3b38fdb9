"""The embedding vector helpers: group sums in any label order, descriptors as weighted means."""

from __future__ import annotations

import numpy as np
import pytest

from herdrecord.reid.vectors import group_sum, quality_weighted_descriptors


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_sums_match_a_plain_scatter_add(order: str, dtype: type) -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(500, 16)).astype(dtype)
    groups = rng.integers(0, 70, 500)  # labels 70..79 and some below never occur
    if order == "sorted":
        groups = np.sort(groups)
    expected = np.zeros((80, 16))
    np.add.at(expected, groups, values)
    summed = group_sum(values, groups, 80)
    assert summed.shape == (80, 16)
    assert summed.dtype == dtype
    np.testing.assert_allclose(summed, expected, rtol=1e-5, atol=1e-5)
    assert not summed[70:].any()


def test_no_rows_sum_to_zeros() -> None:
    summed = group_sum(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 3)
    assert summed.shape == (3, 4) and not summed.any()


def test_a_descriptor_is_the_quality_weighted_mean_of_unit_samples() -> None:
    vectors = np.array([[3.0, 0.0], [0.0, 2.0], [0.0, 5.0]], np.float32)
    quality = np.array([0.75, 0.25, 1.0])
    descriptors, weight = quality_weighted_descriptors(vectors, quality, np.array([0, 0, 1]), 2)
    expected = np.array([0.75, 0.25]) / np.hypot(0.75, 0.25)
    np.testing.assert_allclose(descriptors[0], expected, rtol=1e-6)
    np.testing.assert_allclose(descriptors[1], [0.0, 1.0])
    np.testing.assert_allclose(weight, [1.0, 1.0])
