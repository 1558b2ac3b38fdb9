"""Re-identification index: the pool's exemplar embeddings, searched by cosine similarity."""

from herdrecord.reid.backends import make_index
from herdrecord.reid.exact import ExactIndex
from herdrecord.reid.faiss_index import DEFAULT_IVF_THRESHOLD, FaissConfig, FaissIndex
from herdrecord.reid.index import MISSING_ID, EmbeddingIndex, SearchResult
from herdrecord.reid.persist import (
    IndexStamp,
    index_bytes,
    load_index,
    load_index_bytes,
    save_index,
)

__all__ = [
    "DEFAULT_IVF_THRESHOLD",
    "MISSING_ID",
    "EmbeddingIndex",
    "ExactIndex",
    "FaissConfig",
    "FaissIndex",
    "IndexStamp",
    "SearchResult",
    "index_bytes",
    "load_index",
    "load_index_bytes",
    "make_index",
    "save_index",
]
