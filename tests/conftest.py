"""Shared fixtures: small hand-made edge batches and fresh records in tmp_path."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from herdrecord.config import Settings
from herdrecord.store.record import Record, create_record

DIM = 384
BASE = datetime(2026, 11, 21, 6, tzinfo=UTC)


def _jpeg(seed: int) -> str:
    image = Image.new("RGB", (32, 24), (200, 150 - seed % 50, 140))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return base64.b64encode(buffer.getvalue()).decode()


def make_batch(
    batch_id: str = "dev-01/2026-11-21T06",
    *,
    device_id: str = "dev-01",
    n_tracklets: int = 3,
    n_samples: int = 2,
    n_observations: int = 4,
    seed: int = 0,
    dim: int = DIM,
    track_offset: int = 0,
) -> dict[str, Any]:
    """Return a valid edge batch as a JSON-ready dict."""
    rng = np.random.default_rng(seed)
    tracklets = []
    for i in range(n_tracklets):
        minute = 10 * i
        start = f"2026-11-21T06:{minute:02d}:00Z"
        end = f"2026-11-21T06:{minute + 5:02d}:00Z"
        samples = []
        for k in range(n_samples):
            vector = rng.normal(size=dim)
            vector /= np.linalg.norm(vector)
            samples.append(
                {
                    "t": f"2026-11-21T06:{minute:02d}:{10 + k:02d}Z",
                    "embedding": [round(float(v), 6) for v in vector],
                    "quality": 0.9,
                }
            )
        observations = [
            {
                "t": (BASE + timedelta(minutes=minute + 1, seconds=5 * k)).isoformat(),
                "bbox": [412.0, 220.0, 180.0, 96.0],
                "area_px": 14230.0,
                "behaviour": "lying_sternal",
                "behaviour_conf": 0.93,
                "speed_px_s": 0.0,
                "gait_score": None,
            }
            for k in range(n_observations)
        ]
        tracklets.append(
            {
                "track_id": f"cam1-{track_offset + i:06d}",
                "camera_id": "cam1",
                "pen_id": "pen-1",
                "start": start,
                "end": end,
                "tag_id": "TAG-0001" if i == 0 else None,
                "samples": samples,
                "observations": observations,
                "keyframes": [
                    {"t": start, "bbox": [412.0, 220.0, 180.0, 96.0], "jpeg_b64": _jpeg(seed + i)}
                ],
            }
        )
    return {
        "schema": "herdrecord.edge-batch/1",
        "batch_id": batch_id,
        "farm_id": "farm-a",
        "device_id": device_id,
        "embedder": {"name": "dinov3-vits16", "dim": dim},
        "tracklets": tracklets,
    }


@pytest.fixture
def batch_factory() -> Callable[..., dict[str, Any]]:
    """Return the factory of valid edge batches."""
    return make_batch


@pytest.fixture
def settings() -> Settings:
    """Return settings for tests: no waiting on locks."""
    return Settings(lock_timeout_s=0.5)


@pytest.fixture
def record(tmp_path: Path, settings: Settings) -> Record:
    """Return a fresh, empty record in a temporary directory."""
    return create_record(str(tmp_path / "herd"), settings)


def write_json(batch: dict[str, Any], path: Path) -> Path:
    """Write a batch dict to a JSON file and return the path."""
    path.write_text(json.dumps(batch))
    return path


def deliver_day_by_day(record: Record, batches: list[dict[str, Any]]) -> None:
    """Deliver simulated batches one day at a time as the edge does: each day's files through
    the intake pipeline (journalled, committed, linked), as `herdrecord ingest` takes them."""
    import tempfile

    from herdrecord import ingest_batches

    by_day: dict[str, list[dict[str, Any]]] = {}
    for batch in batches:
        by_day.setdefault(str(batch["batch_id"]).split("/")[1][:10], []).append(batch)
    with tempfile.TemporaryDirectory(prefix="herdrecord-days-") as scratch:
        for day in sorted(by_day):
            folder = Path(scratch) / day
            folder.mkdir()
            for number, batch in enumerate(by_day[day]):
                write_json(batch, folder / f"{number:05d}.json")
            ingest_batches(record, [folder], link="now")


def save_tiny_dinov3(folder: Path, seed: int = 0) -> Path:
    """Save a randomly initialised DINOv3 ViT (384-d, one layer) as real weights are saved:
    config.json and model.safetensors in `folder`; return the folder."""
    import torch
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(seed)
    config = DINOv3ViTConfig(
        hidden_size=384,
        num_hidden_layers=1,
        num_attention_heads=6,
        intermediate_size=384,
        image_size=64,
        patch_size=16,
        num_register_tokens=4,
    )
    DINOv3ViTModel(config).save_pretrained(folder)
    return folder


def service_settings(path: Path, **changes: Any) -> Settings:
    """Settings of a test service: linking only when asked, keys re-read at once."""
    base = {
        "record": str(path),
        "lock_timeout_s": 5.0,
        "api_key_cache_s": 0.0,
        "api_link_idle_s": 3600.0,
        "retention_enabled": False,
    }
    return Settings(**{**base, **changes})


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Storage options of moto's S3 server on a loopback port, with the bucket `herd`."""
    from herdrecord.store.location import ObjectLocation, location_of
    from servers import start_s3_server, stop_server

    options, process = start_s3_server(tmp_path_factory.mktemp("moto") / "moto.log")
    location = location_of("s3://herd", options)
    assert isinstance(location, ObjectLocation)
    location.client.create_bucket(Bucket="herd")
    yield options
    stop_server(process)
