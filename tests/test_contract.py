"""Every rule of the edge batch contract, in its JSON and Parquet forms."""

from __future__ import annotations

import copy
import gzip
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from herdrecord.config import Settings
from herdrecord.contract.limits import BulkLimits
from herdrecord.contract.models import EdgeBatch
from herdrecord.contract.parquet import read_bulk, write_bulk
from herdrecord.contract.rules import Expectations, check_frames
from herdrecord.ingest.sources import parse_json, read_file
from herdrecord.store.schema import DEFAULT_BEHAVIOURS

BULK = BulkLimits.from_settings(Settings())

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def expectations(**overrides: Any) -> Expectations:
    settings = Settings(**overrides)
    return Expectations.for_record("dinov3-vits16", 384, DEFAULT_BEHAVIOURS, settings, NOW)


def problems_of(batch: dict[str, Any], **overrides: Any) -> list[str]:
    """Return every problem the contract finds in a batch dict (JSON path)."""
    candidate = parse_json(json.dumps(batch).encode(), "test")
    if candidate.frames is None:
        return list(candidate.problems)
    return check_frames(candidate.frames, expectations(**overrides))


def test_valid_batch_has_no_problems(batch_factory: Callable[..., dict[str, Any]]) -> None:
    assert problems_of(batch_factory()) == []


def mutate(batch: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    changed = copy.deepcopy(batch)
    change(changed)
    return changed


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "short embedding",
        lambda b: b["tracklets"][1]["samples"][0].update(
            embedding=b["tracklets"][1]["samples"][0]["embedding"][:383]
        ),
        "tracklets[1].samples[0].embedding: expected 384 floats, got 383",
    ),
    (
        "wrong embedder",
        lambda b: b["embedder"].update(name="clip-vitb32"),
        "embedder: the record holds dinov3-vits16/384 vectors, this batch has clip-vitb32/384",
    ),
    (
        "wrong dimension",
        lambda b: b["embedder"].update(dim=512),
        "this batch has dinov3-vits16/512",
    ),
    (
        "end before start",
        lambda b: b["tracklets"][2].update(end="2026-11-21T06:00:00Z"),
        "tracklets[2].end: 2026-11-21T06:00:00Z is before start",
    ),
    (
        "sample outside the tracklet",
        lambda b: b["tracklets"][0]["samples"][1].update(t="2026-11-21T07:00:00Z"),
        "tracklets[0].samples[1].t: 2026-11-21T07:00:00Z is outside the tracklet's",
    ),
    (
        "observation outside the tracklet",
        lambda b: b["tracklets"][0]["observations"][3].update(t="2026-11-21T05:00:00Z"),
        "tracklets[0].observations[3].t: 2026-11-21T05:00:00Z is outside",
    ),
    (
        "time without offset",
        lambda b: b["tracklets"][0].update(start="2026-11-21T06:00:00"),
        "tracklets[0].start: Input should have timezone info",
    ),
    (
        "unknown behaviour",
        lambda b: b["tracklets"][1]["observations"][0].update(behaviour="flying"),
        "tracklets[1].observations[0].behaviour: 'flying' is not in the record's vocabulary",
    ),
    (
        "duplicate track id",
        lambda b: b["tracklets"][2].update(track_id=b["tracklets"][0]["track_id"]),
        "tracklets[2].track_id: 'cam1-000000' repeats tracklets[0]",
    ),
    (
        "no samples",
        lambda b: b["tracklets"][0].update(samples=[]),
        "tracklets[0].samples: List should have at least 1 item",
    ),
    (
        "quality above 1",
        lambda b: b["tracklets"][0]["samples"][0].update(quality=1.5),
        "tracklets[0].samples[0].quality: Input should be less than or equal to 1",
    ),
    (
        "zero-width bbox",
        lambda b: b["tracklets"][0]["observations"][0].update(bbox=[1, 2, 0, 4]),
        "tracklets[0].observations[0].bbox[2]: Input should be greater than 0",
    ),
    (
        "negative speed",
        lambda b: b["tracklets"][0]["observations"][0].update(speed_px_s=-1),
        "tracklets[0].observations[0].speed_px_s: Input should be greater than or equal to 0",
    ),
    (
        "keyframe not a JPEG",
        lambda b: b["tracklets"][0]["keyframes"][0].update(jpeg_b64="aGVsbG8="),
        "tracklets[0].keyframes[0].jpeg_b64: not a JPEG image",
    ),
    (
        "keyframe garbage base64",
        lambda b: b["tracklets"][0]["keyframes"][0].update(jpeg_b64="***"),
        "tracklets[0].keyframes[0].jpeg_b64: not a JPEG image",
    ),
    (
        "unknown field",
        lambda b: b["tracklets"][0].update(colour="pink"),
        "tracklets[0].colour: Extra inputs are not permitted",
    ),
    (
        "wrong schema id",
        lambda b: b.update(schema="herdrecord.edge-batch/2"),
        "schema: Input should be 'herdrecord.edge-batch/1'",
    ),
    (
        "future time",
        lambda b: b["tracklets"][0].update(end="2030-01-01T00:00:00Z"),
        "tracklets[0].end: 2030-01-01T00:00:00Z is in the future",
    ),
    (
        "missing field",
        lambda b: b["tracklets"][0]["observations"][0].pop("area_px"),
        "tracklets[0].observations[0].area_px: Field required",
    ),
]


@pytest.mark.parametrize(("label", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_is_reported_by_path(
    batch_factory: Callable[..., dict[str, Any]],
    label: str,
    change: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    problems = problems_of(mutate(batch_factory(), change))
    assert any(expected in problem for problem in problems), problems


def test_non_finite_embedding_is_rejected(batch_factory: Callable[..., dict[str, Any]]) -> None:
    batch = batch_factory()
    batch["tracklets"][0]["samples"][1]["embedding"][7] = math.nan
    problems = problems_of(batch)  # json.dumps writes NaN, which Python's parser would accept
    assert problems == ["tracklets[0].samples[1].embedding[7]: Input should be a finite number"]


def test_every_problem_is_listed(batch_factory: Callable[..., dict[str, Any]]) -> None:
    batch = batch_factory()
    batch["tracklets"][0]["observations"][0]["behaviour"] = "flying"
    batch["tracklets"][1]["samples"][0]["embedding"] = [0.1] * 10
    batch["tracklets"][2]["end"] = "2026-11-21T05:00:00Z"
    problems = problems_of(batch)
    assert len(problems) == 3
    assert problems[0].startswith("tracklets[2].end")


def test_too_many_tracklets_is_rejected(batch_factory: Callable[..., dict[str, Any]]) -> None:
    problems = problems_of(batch_factory(n_tracklets=3), max_tracklets_per_batch=2)
    assert problems == ["tracklets: 3 tracklets, more than the limit of 2"]


def test_oversized_and_gzip_bomb_are_rejected(
    tmp_path: Path, batch_factory: Callable[..., dict[str, Any]]
) -> None:
    data = json.dumps(batch_factory()).encode()
    plain = tmp_path / "big.json"
    plain.write_bytes(data)
    (candidate,) = read_file(plain, max_bytes=len(data) - 1)
    assert candidate.frames is None
    assert "larger than the limit" in candidate.problems[0]
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b" " * 50_000_000))
    (candidate,) = read_file(bomb, max_bytes=1_000_000)
    assert "larger than the limit of 1000000 bytes" in candidate.problems[0]


def test_gzip_and_plain_json_read_the_same(
    tmp_path: Path, batch_factory: Callable[..., dict[str, Any]]
) -> None:
    data = json.dumps(batch_factory()).encode()
    (tmp_path / "b.json").write_bytes(data)
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(data))
    (plain,) = read_file(tmp_path / "b.json", 10**7)
    (zipped,) = read_file(tmp_path / "b.json.gz", 10**7)
    assert plain.frames is not None and zipped.frames is not None
    assert plain.frames.content_sha256() == zipped.frames.content_sha256()


def test_parquet_form_round_trips_with_the_same_content_hash(
    tmp_path: Path, batch_factory: Callable[..., dict[str, Any]]
) -> None:
    batches = [batch_factory(f"dev-01/b{i}", seed=i, track_offset=10 * i) for i in range(3)]
    path = tmp_path / "bulk.parquet"
    write_bulk([EdgeBatch.model_validate(b) for b in batches], path)
    read = list(read_bulk(path, BULK))
    assert [b.batch_id for b in read] == ["dev-01/b0", "dev-01/b1", "dev-01/b2"]
    for bulk, batch in zip(read, batches, strict=True):
        assert bulk.frames is not None
        json_form = parse_json(json.dumps(batch).encode(), "x").frames
        assert json_form is not None
        assert bulk.frames.content_sha256() == json_form.content_sha256()
        assert check_frames(bulk.frames, expectations()) == []


def test_a_bulk_file_whose_batches_interleave_reads_each_batch_whole(
    tmp_path: Path, batch_factory: Callable[..., dict[str, Any]]
) -> None:
    """Rows of two batches taking turns (a file not written batch after batch): each batch
    is read whole, in the order it first appears, and hashes as its JSON form does; the
    second batch of a batch-after-batch file is a slice of it, and reads the same."""
    batches = [batch_factory(f"dev-01/b{i}", seed=i, track_offset=10 * i) for i in range(2)]
    path = tmp_path / "bulk.parquet"
    write_bulk([EdgeBatch.model_validate(b) for b in batches], path)
    table = pq.read_table(path)
    ids = table.column("batch_id").to_pylist()
    b0 = [i for i, b in enumerate(ids) if b == "dev-01/b0"]
    b1 = [i for i, b in enumerate(ids) if b == "dev-01/b1"]
    assert len(b0) >= 2 and len(b1) >= 2
    turns = [b1[0], b0[0], *[r for pair in zip(b1[1:], b0[1:], strict=False) for r in pair]]
    turns += [r for r in b0 + b1 if r not in turns]
    mixed = tmp_path / "mixed.parquet"
    pq.write_table(table.take(turns), mixed)
    for file, order in ((path, ["dev-01/b0", "dev-01/b1"]), (mixed, ["dev-01/b1", "dev-01/b0"])):
        read = {b.batch_id: b for b in read_bulk(file, BULK)}
        assert list(read) == order
        for batch in batches:
            frames = read[batch["batch_id"]].frames
            json_form = parse_json(json.dumps(batch).encode(), "x").frames
            assert frames is not None and json_form is not None
            assert frames.content_sha256() == json_form.content_sha256()


def test_parquet_form_is_checked_by_the_same_rules(
    tmp_path: Path, batch_factory: Callable[..., dict[str, Any]]
) -> None:
    path = tmp_path / "bulk.parquet"
    write_bulk([EdgeBatch.model_validate(batch_factory())], path)
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[1]["samples"][0]["embedding"] = rows[1]["samples"][0]["embedding"][:100]
    rows[2]["observations"][1]["behaviour"] = "flying"
    rows[0]["samples"][0]["quality"] = float("nan")
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), path)
    (bulk,) = read_bulk(path, BULK)
    assert bulk.frames is not None
    problems = check_frames(bulk.frames, expectations())
    assert "tracklets[1].samples[0].embedding: expected 384 floats, got 100" in problems
    assert any(p.startswith("tracklets[2].observations[1].behaviour: 'flying'") for p in problems)
    assert any(p.startswith("tracklets[0].samples[0].quality: nan") for p in problems)


def test_parquet_with_wrong_columns_is_rejected(tmp_path: Path) -> None:
    import pyarrow as pa

    path = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"batch_id": ["x"], "colour": ["pink"]}), path)
    (bulk,) = read_bulk(path, BULK)
    assert bulk.frames is None
    assert "track_id: required column missing" in bulk.problems
    assert any(p.startswith("colour: unknown column") for p in bulk.problems)


def test_json_schema_describes_the_contract() -> None:
    from herdrecord.contract.models import edge_batch_json_schema

    schema = edge_batch_json_schema()
    assert schema["$id"] == "herdrecord.edge-batch/1"
    assert set(schema["required"]) == {
        "schema",
        "batch_id",
        "farm_id",
        "device_id",
        "embedder",
        "tracklets",
    }


def test_json_batches_convert_to_the_bulk_form_unchanged(
    tmp_path: Path, batch_factory: Callable[..., dict[str, Any]]
) -> None:
    from herdrecord.contract.parquet import bulk_table_from_json

    batches = [batch_factory(f"dev-01/b{i}", seed=i, track_offset=10 * i) for i in range(2)]
    pq.write_table(bulk_table_from_json(batches), tmp_path / "bulk.parquet")
    read = list(read_bulk(tmp_path / "bulk.parquet", BULK))
    for bulk, batch in zip(read, batches, strict=True):
        json_form = parse_json(json.dumps(batch).encode(), "x").frames
        assert bulk.frames is not None and json_form is not None
        assert bulk.frames.content_sha256() == json_form.content_sha256()


def test_parquet_form_ids_follow_the_identifier_rule(
    tmp_path: Path, batch_factory: Callable[..., dict[str, Any]]
) -> None:
    from herdrecord.contract.parquet import bulk_table_from_json

    batch = batch_factory()
    batch["batch_id"] = "bad id with spaces"
    batch["tracklets"][1]["track_id"] = ""
    pq.write_table(bulk_table_from_json([batch]), tmp_path / "bulk.parquet")
    (bulk,) = read_bulk(tmp_path / "bulk.parquet", BULK)
    assert bulk.frames is not None
    problems = check_frames(bulk.frames, expectations())
    assert any(
        p.startswith("batch_id: 'bad id with spaces' is not an identifier") for p in problems
    )
    assert any(p.startswith("tracklets[1].track_id: '' is not an identifier") for p in problems)


def test_parquet_with_uncastable_columns_is_a_clear_problem(tmp_path: Path) -> None:
    import pyarrow as pa

    from herdrecord.contract.parquet import BULK_SCHEMA

    columns = {f.name: pa.nulls(1, f.type) for f in BULK_SCHEMA}
    columns["embedder_dim"] = pa.array(["three hundred"])
    pq.write_table(pa.table(columns), tmp_path / "typed.parquet")
    (bulk,) = read_bulk(tmp_path / "typed.parquet", BULK)
    assert bulk.frames is None
    assert bulk.problems[0].startswith("file: a column has the wrong type for the bulk form")


def test_embedding_values_beyond_float16_are_rejected(
    batch_factory: Callable[..., dict[str, Any]],
) -> None:
    batch = batch_factory()
    batch["tracklets"][0]["samples"][0]["embedding"][3] = 1e5
    assert problems_of(batch) == [
        "tracklets[0].samples[0].embedding: values beyond +-65504 (send unit vectors)"
    ]
