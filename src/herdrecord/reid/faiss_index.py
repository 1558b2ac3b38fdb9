"""FaissIndex: exact inner-product search while the pool is small, IVF-Flat once it is large.

Why 100,000 vectors (measured on a busy 2-core machine, 384-d, synthetic herds of 32
exemplars per animal, faiss-cpu 1.15):

- exact search over 100k costs ~3-5 s per 1,000 batched queries (20k: 0.4 s, 50k: 1.3 s),
  so below that size linking a day's tracklets stays well under a few seconds and exact
  answers cost nothing worth trading away;
- turning IVF costs one k-means training plus calibration inside the crossing `add`:
  ~30 s at 100k on 2 cores (mostly k-means; 4·sqrt(n) lists, 64 training points per
  list, which trains ~3x faster than faiss's 256 at a small recall cost that calibration
  absorbs);
- at 100k the calibrated IVF reached recall@10 0.999 with nprobe 2 of 1,265 lists on well
  separated animals (35x faster batched, ~400x single queries) and 0.991 with nprobe 242
  on drifting, noisy ones (batched as fast as exact, single queries ~15x faster);
- removing 64 ids from the IVF takes < 1 ms; from the exact index, tens of ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from faiss.contrib.inspect_tools import get_invlist
from numpy.typing import NDArray

from herdrecord.reid.index import (
    MISSING_ID,
    SearchResult,
    check_ids,
    check_k,
    check_new_ids,
    check_vectors,
    empty_result,
)

HASHTABLE_DIRECT_MAP: int = faiss.DirectMap.Hashtable  # type: ignore[attr-defined]
"""FAISS's id -> (list, offset) hash map type; faiss's type stubs leave DirectMap out."""

DEFAULT_IVF_THRESHOLD = 100_000
"""Pool size above which the index turns approximate (IVF); see `FaissIndex`."""


@dataclass(frozen=True)
class FaissConfig:
    """How a FaissIndex trades exactness for speed."""

    ivf_threshold: int = DEFAULT_IVF_THRESHOLD
    """Pool size (vectors) above which the index is retrained as IVF."""
    recall_k: int = 10
    """Deepest k searches ask for: nprobe is calibrated for recall@recall_k >= RECALL_TARGET.

    Deeper neighbours lie in farther lists, so a larger k costs more lists per query; past
    an animal's own exemplars they are mostly noise, which IVF finds only by scanning most
    of the lists (measured: recall@50 with 32 exemplars per animal needed 55-70 % of them).
    """
    threads: int | None = None
    """FAISS's OpenMP thread count, set process-wide when given; None keeps FAISS's default."""


DEFAULT_CONFIG = FaissConfig()

LISTS_PER_SQRT_N = 4
"""IVF lists per square root of the pool size (faiss's rule of thumb is 4 to 16)."""

MIN_POINTS_PER_LIST = 39
"""Fewest training vectors per IVF list; k-means places centroids poorly below it."""

TRAINING_POINTS_PER_LIST = 64
"""K-means training sample per IVF list (faiss's default 256 trains ~3x slower)."""

RECALL_TARGET = 0.995
"""Recall@recall_k that nprobe is calibrated for: 0.99 promised, plus a margin for queries
that are not pool vectors."""

CALIBRATION_QUERIES = 256
"""Pool vectors used as calibration queries."""


def lists_for(size: int, expected_size: int = 0) -> int:
    """Return the IVF list count to train on `size` vectors for a pool expected to reach more."""
    wanted = round(LISTS_PER_SQRT_N * math.sqrt(max(size, expected_size)))
    # Never more lists than the vectors at hand can train, even if more are expected.
    return max(1, min(wanted, size // MIN_POINTS_PER_LIST))


def calibrate_probes(
    index: Any, ids: NDArray[np.int64], vectors: NDArray[np.float32], recall_k: int
) -> int:
    """Return the fewest lists `index` must scan for recall@recall_k >= RECALL_TARGET.

    `index` is a trained, filled IVF holding the (n,) `ids` with their (n, d) `vectors`.
    """
    # How many lists are needed depends on how clustered the embeddings are, which no
    # fixed fraction of nlist captures (measured: 1/128 of the lists suffices for well
    # separated animals, 1/8 is needed for drifting, noisy ones), so it is measured here.
    n = len(ids)
    sample = np.random.default_rng(0).choice(n, size=min(CALIBRATION_QUERIES, n), replace=False)
    queries = vectors[sample]
    k = min(recall_k + 1, n)  # + 1: each query finds itself, which proves nothing
    _, positions = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    truth = [
        set(row.tolist()) - {own} for row, own in zip(ids[positions], ids[sample], strict=True)
    ]
    wanted = sum(len(row) for row in truth)

    def recall(nprobe: int) -> float:
        index.nprobe = nprobe
        _, found = index.search(queries, k)
        hits = sum(len(row & set(got.tolist())) for row, got in zip(truth, found, strict=True))
        return hits / wanted if wanted else 1.0

    # Recall can only grow with nprobe (more lists, more candidates). Gallop up from one
    # list, then bisect: the searches cost about twice the final nprobe, whereas plain
    # bisection would start by scanning half the lists.
    nlist = int(index.nlist)
    high = 1
    while high < nlist and recall(high) < RECALL_TARGET:
        high = min(2 * high, nlist)
    low = high // 2 + 1 if high > 1 else 1
    while low < high:
        middle = (low + high) // 2
        if recall(middle) >= RECALL_TARGET:
            high = middle
        else:
            low = middle + 1
    return high


def read_list(invlists: Any, list_no: int) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """Return the (n,) ids and (n, code_size) codes in IVF list `list_no`."""
    list_ids, codes = get_invlist(invlists, list_no)  # type: ignore[no-untyped-call]
    return np.asarray(list_ids, dtype=np.int64), np.asarray(codes, dtype=np.uint8)


class FaissIndex:
    """Search unit vectors by inner product with FAISS, exactly while small, by IVF when large.

    Up to `config.ivf_threshold` vectors the index is `IndexIDMap2(IndexFlatIP)`: exact,
    and a removal compacts one array. Above it the index is retrained as IVF-Flat (inner
    product, about 4·sqrt(n) lists, spherical k-means) with a hashtable direct map, so that
    removing the exemplars of a merged or split animal costs O(removed), not a rebuild;
    nprobe is then calibrated on the pool itself for recall@`config.recall_k` >= 0.995.
    HNSW would search faster but cannot remove ids at all, and pool upkeep removes ids all
    the time. The IVF is retrained when the pool has grown about fourfold since its
    training (the ideal list count has doubled), so retraining is amortised over the adds;
    it is not retrained as the pool shrinks.
    """

    def __init__(
        self, dim: int, *, expected_size: int = 0, config: FaissConfig = DEFAULT_CONFIG
    ) -> None:
        """Make an empty index for a pool expected to grow to about `expected_size` vectors."""
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        if config.ivf_threshold < MIN_POINTS_PER_LIST:
            raise ValueError(f"ivf_threshold must be at least {MIN_POINTS_PER_LIST}")
        if config.recall_k < 1:
            raise ValueError(f"recall_k must be at least 1, got {config.recall_k}")
        if config.threads is not None:
            faiss.omp_set_num_threads(config.threads)
        self._dim = dim
        self._expected_size = expected_size
        self._config = config
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        # FAISS cannot say cheaply whether it holds an id, and adding one twice corrupts
        # IndexIDMap2's reverse map and the IVF direct map, so the ids are kept here too.
        self._ids: set[int] = set()

    @property
    def dim(self) -> int:
        """Return the embedding dimension."""
        return self._dim

    @property
    def config(self) -> FaissConfig:
        """Return the configuration the index was made with."""
        return self._config

    @property
    def is_approximate(self) -> bool:
        """Return whether the index is in its IVF (approximate) regime."""
        return isinstance(self._index, faiss.IndexIVFFlat)

    @property
    def nlist(self) -> int:
        """Return the number of IVF lists (0 in the exact regime)."""
        return int(self._index.nlist) if self.is_approximate else 0

    @property
    def nprobe(self) -> int:
        """Return the number of IVF lists each query scans (0 in the exact regime)."""
        return int(self._index.nprobe) if self.is_approximate else 0

    def __len__(self) -> int:
        """Return the number of vectors held."""
        return len(self._ids)

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add (n,) new non-negative ids with their (n, dim) unit vectors; ids must be unused."""
        new_ids = check_ids(ids)
        new_vectors = check_vectors(vectors, self._dim)
        check_new_ids(new_ids, new_vectors.shape[0])
        listed = new_ids.tolist()
        taken = [i for i in listed if i in self._ids]
        if taken:
            raise ValueError(f"ids already in the index: {taken[:5]}; remove them first")
        if not listed:
            return
        self._index.add_with_ids(new_vectors, new_ids)
        self._ids.update(listed)
        self._retrain_if_outgrown()

    def remove(self, ids: NDArray[np.int64]) -> int:
        """Remove (n,) ids; return how many were present (unknown ids are ignored)."""
        present = np.array(
            sorted({i for i in check_ids(ids).tolist() if i in self._ids}), dtype=np.int64
        )
        if present.size == 0:
            return 0
        selector: faiss.IDSelector
        if self.is_approximate:
            # The hashtable direct map only accepts an array selector; it then removes
            # each id in O(1) instead of scanning every list.
            selector = faiss.IDSelectorArray(present.size, faiss.swig_ptr(present))
        else:
            # IDSelectorArray tests membership by a linear scan, too slow over the flat pool.
            selector = faiss.IDSelectorBatch(present.size, faiss.swig_ptr(present))
        removed = int(self._index.remove_ids(selector))
        if removed != present.size:
            raise RuntimeError(f"FAISS removed {removed} of {present.size} ids it held")
        self._ids.difference_update(present.tolist())
        return removed

    def search(self, queries: NDArray[np.float32], k: int) -> SearchResult:
        """Return the k best (highest inner product) ids for each of the (m, dim) queries."""
        check_k(k)
        matrix = check_vectors(queries, self._dim, "queries")
        if matrix.shape[0] == 0 or not self._ids:
            return empty_result(matrix.shape[0], k)
        scores, found = self._index.search(matrix, k)
        # FAISS fills missing slots with -FLT_MAX or -inf depending on the index; unify.
        scores[found == MISSING_ID] = -np.inf
        return SearchResult(
            scores=np.asarray(scores, dtype=np.float32), ids=np.asarray(found, dtype=np.int64)
        )

    def ids(self) -> NDArray[np.int64]:
        """Return the (n,) ids held, ascending (no vectors copied, unlike `contents`)."""
        return np.sort(np.fromiter(self._ids, dtype=np.int64, count=len(self._ids)))

    def contents(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Return every (n,) id and its (n, dim) vector, in no particular order."""
        if not self.is_approximate:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            vectors = self._index.index.reconstruct_n(0, self._index.ntotal)
            return ids, np.asarray(vectors, dtype=np.float32).reshape(-1, self._dim)
        id_parts = []
        vector_parts = []
        for list_no in range(self._index.nlist):
            list_ids, codes = read_list(self._index.invlists, list_no)
            id_parts.append(list_ids)
            vector_parts.append(codes.view(np.float32).reshape(-1, self._dim))
        return np.concatenate(id_parts), np.concatenate(vector_parts)

    def to_bytes(self) -> bytes:
        """Return the FAISS serialisation of the index (ids and vectors included)."""
        return bytes(faiss.serialize_index(self._index).tobytes())

    @classmethod
    def from_bytes(
        cls, data: bytes, *, expected_size: int = 0, config: FaissConfig = DEFAULT_CONFIG
    ) -> FaissIndex:
        """Return the index serialised by `to_bytes`; raise ValueError if it is not one."""
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as error:
            raise ValueError(f"not a FAISS index: {error}") from error
        if isinstance(index, faiss.IndexIDMap2):
            inner = faiss.downcast_index(index.index)
            if not isinstance(inner, faiss.IndexFlatIP):
                raise ValueError(f"unexpected FAISS index under the id map: {type(inner)}")
        elif isinstance(index, faiss.IndexIVFFlat):
            if index.metric_type != faiss.METRIC_INNER_PRODUCT:
                raise ValueError("IVF index does not use inner product")
            if index.direct_map.type != HASHTABLE_DIRECT_MAP:
                raise ValueError("IVF index has no hashtable direct map")
        else:
            raise ValueError(f"unexpected FAISS index type {type(index).__name__}")
        loaded = cls(int(index.d), expected_size=expected_size, config=config)
        loaded._index = index
        ids = loaded.contents()[0].tolist()
        loaded._ids = set(ids)
        if len(loaded._ids) != len(ids):
            raise ValueError("FAISS index holds repeated ids")
        loaded._retrain_if_outgrown()
        return loaded

    def _retrain_if_outgrown(self) -> None:
        size = len(self._ids)
        if not self.is_approximate:
            if size > self._config.ivf_threshold:
                self._train_ivf()
        elif lists_for(size, self._expected_size) >= 2 * self._index.nlist:
            self._train_ivf()

    def _train_ivf(self) -> None:
        ids, vectors = self.contents()
        nlist = lists_for(len(ids), self._expected_size)
        quantizer = faiss.IndexFlatIP(self._dim)
        index = faiss.IndexIVFFlat(quantizer, self._dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # Unit vectors compared by inner product: centroids belong on the sphere too.
        index.cp.spherical = True
        index.cp.max_points_per_centroid = TRAINING_POINTS_PER_LIST
        index.train(vectors)
        index.set_direct_map_type(HASHTABLE_DIRECT_MAP)
        index.add_with_ids(vectors, ids)
        index.nprobe = calibrate_probes(index, ids, vectors, self._config.recall_k)
        self._index = index
