"""Bad input, generated and hand-made: every malformed batch is refused with its problems
and stores nothing; nothing raises."""

from __future__ import annotations

import copy
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_batch
from herdrecord.config import Settings
from herdrecord.contract.parquet import bulk_table_from_json
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import read_bytes, read_file
from herdrecord.store.record import Record, create_record
from herdrecord.store.schema import BATCH_TABLES

REMOVE = object()
HUGE = "x" * 200_000
DEEP: Any = 0
for _ in range(500):
    DEEP = [DEEP]
REPLACEMENTS = st.one_of(
    st.just(REMOVE),
    st.none(),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), HUGE, DEEP, "", -1, 10**30]),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    yield create_record(
        str(tmp_path_factory.mktemp("bad") / "herd"), Settings(retention_enabled=False)
    )


def _counts(record: Record) -> dict[str, int]:
    return {name: record.table(name).count_rows() for name in ("batches", *BATCH_TABLES)}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Yield the path of every value in a JSON document (embeddings: their first entries)."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:3]):
            yield from _paths(child, (*prefix, index))


def _mutated(batch: dict[str, Any], path: tuple[Any, ...], replacement: Any) -> Any:
    if not path:
        return None if replacement is REMOVE else replacement
    out = copy.deepcopy(batch)
    parent = out
    for part in path[:-1]:
        parent = parent[part]
    if replacement is REMOVE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return out


BASE = make_batch(
    "dev-09/base", device_id="dev-09", n_tracklets=1, n_samples=1, n_observations=2, dim=384
)
PATHS = list(_paths(BASE))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(PATHS) - 1), replacement=REPLACEMENTS)
def test_a_mutated_batch_is_stored_whole_or_not_at_all(
    record: Record, index: int, replacement: Any
) -> None:
    path = PATHS[index]
    document = _mutated(BASE, path, replacement)
    try:
        body = json.dumps(document, allow_nan=True).encode()
    except (ValueError, RecursionError):
        return  # not expressible as JSON text: nothing to send
    before = _counts(record)
    candidate = read_bytes(io.BytesIO(body), "mutated", record.settings.max_batch_bytes)
    outcome = ingest(record, [candidate]).outcomes[0]
    after = _counts(record)
    if outcome.status == "rejected":
        assert outcome.problems, f"rejected without a reason: {path}"
        assert after == before, f"a rejected batch stored rows: {path} = {replacement!r:.80}"
    elif outcome.status == "accepted":
        assert after["batches"] == before["batches"] + 1
        assert after["tracklets"] == before["tracklets"] + len(document["tracklets"])
    else:
        assert after == before  # a duplicate stores nothing new


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_cleanly(record: Record, body: bytes) -> None:
    before = _counts(record)
    for data in (body, gzip.compress(body)):
        candidate = read_bytes(io.BytesIO(data), "bytes", record.settings.max_batch_bytes)
        outcome = ingest(record, [candidate]).outcomes[0]
        assert outcome.status == "rejected" and outcome.problems
    assert _counts(record) == before


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("truncated gzip", gzip.compress(json.dumps(BASE).encode())[:-20]),
        ("gzip bomb", gzip.compress(b"[" * 70_000_000)),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
        ("huge string", json.dumps({**BASE, "batch_id": HUGE}).encode()),
        ("wrong types", json.dumps({**BASE, "tracklets": "none"}).encode()),
        ("NaN", json.dumps(BASE).replace('"quality": 0.9', '"quality": NaN').encode()),
    ],
)
def test_hand_made_bad_batches_are_refused(record: Record, name: str, body: bytes) -> None:
    before = _counts(record)
    candidate = read_bytes(io.BytesIO(body), name, record.settings.max_batch_bytes)
    outcome = ingest(record, [candidate]).outcomes[0]
    assert outcome.status == "rejected" and outcome.problems, name
    assert _counts(record) == before


def test_a_parquet_file_of_the_wrong_schema_is_refused(record: Record, tmp_path: Path) -> None:
    good = bulk_table_from_json([make_batch("dev-08/p", device_id="dev-08")])
    wrong = good.set_column(
        good.schema.get_field_index("embedder_dim"),
        "embedder_dim",
        pa.array(["384"] * good.num_rows),  # text where a number belongs
    ).drop_columns(["samples"])
    path = tmp_path / "wrong.parquet"
    pq.write_table(wrong, path)
    before = _counts(record)
    outcomes = ingest(record, list(read_file(path, record.settings.max_batch_bytes))).outcomes
    assert outcomes and all(o.status == "rejected" and o.problems for o in outcomes)
    assert _counts(record) == before
