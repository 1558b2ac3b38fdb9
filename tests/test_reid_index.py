"""The re-ID index: FAISS (flat and IVF regimes) against the exact numpy oracle."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from numpy.typing import NDArray

from herdrecord.reid import (
    MISSING_ID,
    EmbeddingIndex,
    ExactIndex,
    FaissConfig,
    FaissIndex,
    IndexStamp,
    load_index,
    make_index,
    save_index,
)

DIM = 32
# A small threshold, so that tests reach the IVF regime with a few thousand vectors; recall is
# calibrated for k up to 50 because the tests search that deep.
IVF = FaissConfig(ivf_threshold=1_000, recall_k=50)

Factory = Callable[[int], EmbeddingIndex]

BACKENDS: dict[str, Factory] = {
    "exact": ExactIndex,
    "faiss-flat": FaissIndex,
    "faiss-ivf": lambda dim: FaissIndex(dim, config=IVF),
}


def unit(vectors: NDArray[np.float64]) -> NDArray[np.float32]:
    """Return the (n, d) rows scaled to unit length, as float32."""
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)


def herd(
    n: int, seed: int = 0, dim: int = DIM, per_animal: int = 20, noise: float = 0.8
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return (n, dim) exemplars of n / per_animal animals and (200, dim) queries of them."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(max(1, n // per_animal), dim)))

    def draw(count: int) -> NDArray[np.float32]:
        owner = rng.integers(0, len(centres), size=count)
        return unit(centres[owner] + noise * rng.normal(size=(count, dim)) / np.sqrt(dim))

    return draw(n), draw(200)


def filled(backend: str, n: int, seed: int = 0) -> tuple[EmbeddingIndex, NDArray[np.float32]]:
    """Return an index of `backend` holding n herd exemplars under ids 0..n-1, and queries."""
    vectors, queries = herd(n, seed)
    index = BACKENDS[backend](DIM)
    index.add(np.arange(n, dtype=np.int64), vectors)
    return index, queries


def recall(truth: NDArray[np.int64], found: NDArray[np.int64]) -> float:
    """Return the fraction of the (m, k) true neighbour ids that `found` holds."""
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(truth, found, strict=True))
    return hits / truth.size


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_each_backend_is_an_embedding_index(backend: str) -> None:
    assert isinstance(BACKENDS[backend](DIM), EmbeddingIndex)


def test_make_index_picks_the_backend() -> None:
    assert isinstance(make_index(DIM, 10), FaissIndex)
    assert isinstance(make_index(DIM, 10, backend="exact"), ExactIndex)
    with pytest.raises(ValueError, match="unknown index backend"):
        make_index(DIM, 10, backend="hnsw")


def test_flat_faiss_equals_exact() -> None:
    vectors, queries = herd(2_000)
    ids = np.random.default_rng(1).permutation(10_000)[:2_000].astype(np.int64)
    exact, approximate = ExactIndex(DIM), FaissIndex(DIM)
    for index in (exact, approximate):
        index.add(ids, vectors)
    truth, found = exact.search(queries, 10), approximate.search(queries, 10)
    assert not approximate.is_approximate
    np.testing.assert_array_equal(found.ids, truth.ids)
    np.testing.assert_allclose(found.scores, truth.scores, atol=1e-5)


@pytest.fixture(scope="module")
def ivf_and_oracle() -> tuple[FaissIndex, ExactIndex, NDArray[np.float32]]:
    """Return an IVF-regime FaissIndex and an ExactIndex of one herd, and queries (read-only)."""
    index, queries = filled("faiss-ivf", 8_000)
    oracle, _ = filled("exact", 8_000)
    assert isinstance(index, FaissIndex) and isinstance(oracle, ExactIndex)
    return index, oracle, queries


@pytest.mark.parametrize("k", [1, 10, 50])
def test_ivf_faiss_recall_against_exact(
    ivf_and_oracle: tuple[FaissIndex, ExactIndex, NDArray[np.float32]], k: int
) -> None:
    index, oracle, queries = ivf_and_oracle
    assert index.is_approximate
    assert 1 < index.nprobe < index.nlist  # calibrated: neither one list nor all of them
    assert recall(oracle.search(queries, k).ids, index.search(queries, k).ids) >= 0.99


def test_ivf_faiss_recall_with_the_default_calibration_depth() -> None:
    vectors, queries = herd(8_000)
    ids = np.arange(8_000, dtype=np.int64)
    index, oracle = FaissIndex(DIM, config=FaissConfig(ivf_threshold=1_000)), ExactIndex(DIM)
    for each in (index, oracle):
        each.add(ids, vectors)
    assert index.is_approximate and index.config.recall_k == 10
    assert recall(oracle.search(queries, 10).ids, index.search(queries, 10).ids) >= 0.99


@pytest.mark.slow
def test_ivf_faiss_recall_at_a_realistic_size() -> None:
    vectors, queries = herd(120_000, dim=384, per_animal=32, noise=1.0)
    ids = np.arange(len(vectors), dtype=np.int64)
    index, oracle = FaissIndex(384), ExactIndex(384)
    for each in (index, oracle):
        each.add(ids, vectors)
    assert index.is_approximate  # above DEFAULT_IVF_THRESHOLD
    assert recall(oracle.search(queries, 10).ids, index.search(queries, 10).ids) >= 0.99


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_search_finds_each_vector_itself_first(backend: str) -> None:
    vectors, _ = herd(3_000)
    index = BACKENDS[backend](DIM)
    index.add(np.arange(3_000, dtype=np.int64) * 7, vectors)
    result = index.search(vectors[:50], 5)
    np.testing.assert_array_equal(result.ids[:, 0], np.arange(50) * 7)
    np.testing.assert_allclose(result.scores[:, 0], 1.0, atol=1e-5)
    assert result.scores.dtype == np.float32 and result.ids.dtype == np.int64
    assert (np.diff(result.scores, axis=1) <= 0).all()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_removed_ids_are_never_returned(backend: str) -> None:
    index, queries = filled(backend, 3_000)
    gone = np.arange(0, 3_000, 2, dtype=np.int64)
    assert index.remove(gone) == 1_500
    assert len(index) == 1_500
    result = index.search(queries, 100)
    assert not np.isin(result.ids, gone).any()
    assert (result.ids != MISSING_ID).all()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_remove_counts_only_ids_present(backend: str) -> None:
    index, _ = filled(backend, 100)
    assert index.remove(np.array([500, 501], dtype=np.int64)) == 0
    assert index.remove(np.array([5, 5, 6, 500], dtype=np.int64)) == 2
    assert index.remove(np.array([5], dtype=np.int64)) == 0
    assert index.remove(np.array([], dtype=np.int64)) == 0
    assert len(index) == 98


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_removed_id_can_be_added_again(backend: str) -> None:
    index, _ = filled(backend, 100)
    replacement = unit(np.random.default_rng(9).normal(size=(1, DIM)))
    index.remove(np.array([42], dtype=np.int64))
    index.add(np.array([42], dtype=np.int64), replacement)
    assert len(index) == 100
    assert index.search(replacement, 1).ids[0, 0] == 42


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_empty_index_returns_missing_slots(backend: str) -> None:
    index = BACKENDS[backend](DIM)
    queries = unit(np.random.default_rng(0).normal(size=(3, DIM)))
    result = index.search(queries, 4)
    assert result.ids.shape == (3, 4) and (result.ids == MISSING_ID).all()
    assert np.isneginf(result.scores).all()
    assert len(index) == 0


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_slots_beyond_the_pool_are_missing(backend: str) -> None:
    vectors, queries = herd(3)
    index = BACKENDS[backend](DIM)
    index.add(np.array([10, 11, 12], dtype=np.int64), vectors)
    result = index.search(queries[:2], 5)
    assert (result.ids[:, 3:] == MISSING_ID).all() and np.isneginf(result.scores[:, 3:]).all()
    assert sorted(result.ids[0, :3].tolist()) == [10, 11, 12]
    assert index.search(queries[:0], 5).ids.shape == (0, 5)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_bad_input_is_refused(backend: str) -> None:
    index, _ = filled(backend, 10)
    vector = unit(np.ones((1, DIM)))
    with pytest.raises(ValueError, match="already in the index"):
        index.add(np.array([3], dtype=np.int64), vector)
    with pytest.raises(ValueError, match="repeat"):
        index.add(np.array([20, 20], dtype=np.int64), np.repeat(vector, 2, axis=0))
    with pytest.raises(ValueError, match="non-negative"):
        index.add(np.array([-1], dtype=np.int64), vector)
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([20], dtype=np.int64), np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="1 ids for 2 vectors"):
        index.add(np.array([20], dtype=np.int64), np.repeat(vector, 2, axis=0))
    with pytest.raises(ValueError, match="k must be"):
        index.search(vector, 0)
    assert len(index) == 10


def test_exact_ties_go_to_the_lower_id() -> None:
    vector = unit(np.ones((1, DIM)))
    index = ExactIndex(DIM)
    index.add(np.array([9, 4, 7], dtype=np.int64), np.repeat(vector, 3, axis=0))
    assert index.search(vector, 2).ids.tolist() == [[4, 7]]


def test_faiss_turns_ivf_above_the_threshold_and_removes_without_retraining() -> None:
    vectors, queries = herd(4_000)
    index = FaissIndex(DIM, config=IVF)
    index.add(np.arange(1_000, dtype=np.int64), vectors[:1_000])
    assert not index.is_approximate  # at the threshold, still exact
    index.add(np.arange(1_000, 2_000, dtype=np.int64), vectors[1_000:2_000])
    assert index.is_approximate
    trained = (index.nlist, index.nprobe)
    # A merge or split removes and re-adds a few exemplars: no retraining for that.
    index.remove(np.arange(0, 2_000, 5, dtype=np.int64))
    index.add(np.arange(0, 2_000, 5, dtype=np.int64), vectors[0:2_000:5])
    assert (index.nlist, index.nprobe) == trained
    # Fourfold growth doubles the ideal list count: then it retrains.
    index.add(np.arange(2_000, 4_000, dtype=np.int64), vectors[2_000:])
    oracle = ExactIndex(DIM)
    oracle.add(np.arange(4_000, dtype=np.int64), vectors)
    assert recall(oracle.search(queries, 10).ids, index.search(queries, 10).ids) >= 0.99


def test_contents_return_every_vector() -> None:
    index, _ = filled("faiss-ivf", 2_000)
    assert isinstance(index, FaissIndex)
    ids, vectors = index.contents()
    order = np.argsort(ids)
    np.testing.assert_array_equal(ids[order], np.arange(2_000))
    np.testing.assert_array_equal(vectors[order], herd(2_000)[0])


@pytest.mark.parametrize("backend", ["exact", "faiss-flat", "faiss-ivf"])
def test_ids_lists_what_is_held(backend: str) -> None:
    index, _ = filled(backend, 2_000)
    assert isinstance(index, ExactIndex | FaissIndex)
    index.remove(np.arange(0, 2_000, 3, dtype=np.int64))
    expected = np.setdiff1d(np.arange(2_000), np.arange(0, 2_000, 3))
    np.testing.assert_array_equal(index.ids(), expected)
    if isinstance(index, FaissIndex):
        np.testing.assert_array_equal(np.sort(index.contents()[0]), expected)


def test_threads_sets_the_faiss_thread_count() -> None:
    before = faiss.omp_get_max_threads()
    try:
        FaissIndex(DIM, config=FaissConfig(threads=1))
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(before)


STAMP = IndexStamp(table_version=7, dim=DIM, embedder="dinov3-vits16", count=2_000)


@pytest.mark.parametrize("backend", ["faiss-flat", "faiss-ivf"])
def test_saved_index_loads_back(tmp_path: Path, backend: str) -> None:
    index, queries = filled(backend, 2_000)
    assert isinstance(index, FaissIndex)
    path = tmp_path / "pool.faiss"
    save_index(index, path, STAMP)
    loaded = load_index(path, STAMP, index.config)
    assert loaded is not None
    assert len(loaded) == 2_000 and loaded.is_approximate == index.is_approximate
    assert loaded.nprobe == index.nprobe
    before, after = index.search(queries, 10), loaded.search(queries, 10)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    assert loaded.remove(np.array([0, 1], dtype=np.int64)) == 2
    assert os.listdir(tmp_path) == ["pool.faiss"]  # no temporary file left behind


@pytest.mark.parametrize(
    "changed",
    [
        {"table_version": 8},
        {"dim": DIM + 1},
        {"embedder": "dinov3-vitb16"},
        {"count": 1_999},
    ],
)
def test_stale_stamp_means_rebuild(tmp_path: Path, changed: dict[str, Any]) -> None:
    index, _ = filled("faiss-flat", 2_000)
    assert isinstance(index, FaissIndex)
    save_index(index, tmp_path / "pool.faiss", STAMP)
    expected = dataclasses.replace(STAMP, **changed)
    assert load_index(tmp_path / "pool.faiss", expected) is None


@pytest.fixture(scope="module")
def saved_ivf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Return the bytes of an IVF-regime index file stamped STAMP."""
    index, _ = filled("faiss-ivf", 2_000)
    assert isinstance(index, FaissIndex)
    path = tmp_path_factory.mktemp("saved") / "pool.faiss"
    save_index(index, path, STAMP)
    return path.read_bytes()


def corrupt_payload(data: bytes) -> bytes:
    """Return `data` with one byte near its end flipped."""
    return data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:]


@pytest.mark.parametrize(
    "damage",
    [
        corrupt_payload,
        lambda data: data[: len(data) // 2],
        lambda data: data[:10],
        lambda data: b"",
        lambda data: b"not an index at all" * 100,
        lambda data: data[:16] + b"x" + data[17:],
    ],
    ids=["flipped-byte", "truncated", "header-cut", "empty", "foreign", "bad-json"],
)
def test_corrupt_file_means_rebuild(
    tmp_path: Path, saved_ivf: bytes, damage: Callable[[bytes], bytes]
) -> None:
    path = tmp_path / "pool.faiss"
    path.write_bytes(saved_ivf)
    assert load_index(path, STAMP, IVF) is not None
    path.write_bytes(damage(saved_ivf))
    assert load_index(path, STAMP, IVF) is None


def test_other_calibration_depth_means_rebuild(tmp_path: Path, saved_ivf: bytes) -> None:
    path = tmp_path / "pool.faiss"
    path.write_bytes(saved_ivf)
    assert load_index(path, STAMP, FaissConfig(recall_k=10)) is None


def test_empty_index_round_trips(tmp_path: Path) -> None:
    stamp = IndexStamp(table_version=1, dim=DIM, embedder="dinov3-vits16", count=0)
    save_index(FaissIndex(DIM), tmp_path / "pool.faiss", stamp)
    loaded = load_index(tmp_path / "pool.faiss", stamp)
    assert loaded is not None and len(loaded) == 0


def test_missing_file_means_rebuild(tmp_path: Path) -> None:
    assert load_index(tmp_path / "absent.faiss", STAMP) is None


def test_save_refuses_a_stamp_that_does_not_describe_the_index(tmp_path: Path) -> None:
    index, _ = filled("faiss-flat", 10)
    assert isinstance(index, FaissIndex)
    with pytest.raises(ValueError, match="stamp says"):
        save_index(index, tmp_path / "pool.faiss", STAMP)
    assert not (tmp_path / "pool.faiss").exists()


def test_save_replaces_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "pool.faiss"
    small, _ = filled("faiss-flat", 10)
    large, _ = filled("faiss-flat", 2_000)
    assert isinstance(small, FaissIndex) and isinstance(large, FaissIndex)
    save_index(small, path, IndexStamp(6, DIM, "dinov3-vits16", 10))
    save_index(large, path, STAMP)
    assert load_index(path, IndexStamp(6, DIM, "dinov3-vits16", 10)) is None
    loaded = load_index(path, STAMP)
    assert loaded is not None and len(loaded) == 2_000
