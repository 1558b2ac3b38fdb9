"""Small uploads that expand to huge ones: each is refused fast, with a short reply, at a
bounded cost in the serving process's peak memory, and nothing of it is stored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import make_batch, service_settings
from herdrecord.api.keys import add_key
from herdrecord.config import Settings
from herdrecord.contract.limits import FULL_LISTING_BYTES, BulkLimits
from herdrecord.contract.parquet import bulk_table_from_json, read_bulk
from herdrecord.ingest.sources import parse_json
from herdrecord.simulation.hostile import BOMBS
from herdrecord.store.record import create_record, open_record
from servers import start_server, stop_server

PEAK_GROWTH_LIMIT = 150 * 1024 * 1024  # what any bomb below may add to the server's peak RSS


def _peak_rss(pid: int) -> int:
    """Return the process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, str, Path]]:
    """A real `herdrecord serve` in a child process and an edge key for it."""
    folder = tmp_path_factory.mktemp("bombs")
    record = create_record(str(folder / "herd"), service_settings(folder / "herd"))
    key = add_key(record, "edge-1", "edge", "test")[1]
    url, process = start_server(folder / "herd", folder / "serve.log")
    try:
        # One ordinary upload first, so what is measured next is the bombs, not warm-up.
        ok = httpx.post(
            f"{url}/v1/batches",
            json=make_batch("dev-01/warm-up"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert ok.status_code == 201, ok.text
        yield url, process.pid, key, folder / "herd"
    finally:
        stop_server(process)


def _stored(path: Path) -> dict[str, int]:
    record = open_record(str(path))
    return {name: record.table(name).count_rows() for name in ("batches", "tracklets")}


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_is_refused_fast_short_and_cheap(
    server: tuple[str, int, str, Path], tmp_path: Path, name: str
) -> None:
    url, pid, key, record_path = server
    body, content_type = BOMBS[name](make_batch(), tmp_path)
    before, stored = _peak_rss(pid), _stored(record_path)
    started = time.monotonic()
    response = httpx.post(
        f"{url}/v1/batches",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
        timeout=120,
    )
    seconds = time.monotonic() - started
    grown = _peak_rss(pid) - before
    print(
        f"{name}: {len(body):,} bytes -> {response.status_code} in {seconds:.2f} s, "
        f"reply {len(response.content):,} bytes, peak RSS +{grown / 1e6:.0f} MB"
    )
    assert response.status_code == 422, response.text[:500]
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "batch_rejected"
    assert 1 <= len(error["problems"]) <= 51
    assert len(response.content) < 64 * 1024
    assert seconds < 2.0
    assert grown < PEAK_GROWTH_LIMIT
    assert _stored(record_path) == stored


def test_problems_are_capped_with_a_count_of_the_rest(tmp_path: Path) -> None:
    batch = make_batch("dev-01/many-bad", n_tracklets=1, n_samples=1, n_observations=0)
    tracklet = batch["tracklets"][0]
    tracklet["samples"][0]["embedding"] = [0.0]  # small: the models do not check the dim
    tracklet["keyframes"] = []
    batch["tracklets"] = [{**tracklet, "track_id": f"t{i}", "pen_id": ""} for i in range(120)]
    data = json.dumps(batch).encode()
    assert len(data) < FULL_LISTING_BYTES  # small: every problem is listed
    candidate = parse_json(data, "x")
    assert candidate.frames is None
    assert len(candidate.problems) == 51
    assert candidate.problems[-1] == "batch: and 70 more problems"
    assert candidate.problems[0].startswith("tracklets[0].pen_id:")
    # A large batch lists each list's first problem only: its cost is bounded.
    batch["tracklets"] *= 100
    for i, item in enumerate(batch["tracklets"]):
        batch["tracklets"][i] = {**item, "track_id": f"t{i}"}
    (problem,) = parse_json(json.dumps(batch).encode(), "x").problems
    assert problem.startswith("tracklets[0].pen_id:")


def test_an_honest_bulk_file_still_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "day.parquet"
    batches = [make_batch(f"dev-01/b{i}") for i in range(3)]
    pq.write_table(bulk_table_from_json(batches), path)
    read = list(read_bulk(path, BulkLimits.from_settings(Settings())))
    assert [b.problems for b in read] == [(), (), ()]
    assert [b.batch_id for b in read] == [f"dev-01/b{i}" for i in range(3)]
    assert all(
        np.all(b.frames.tracklets.column("n_samples").to_numpy() > 0) for b in read if b.frames
    )
