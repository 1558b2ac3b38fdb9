"""The embedder through the code path real weights take (a tiny randomly initialised DINOv3
saved to a folder), its preprocessing, and the embedder identity a record pins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import make_batch, save_tiny_dinov3
from herdrecord.cli import app as cli_app
from herdrecord.config import Settings
from herdrecord.embedding.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Embedder,
    Preprocessing,
    weights_sha256,
)
from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.store.record import create_record, open_record

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_dinov3(tmp_path_factory.mktemp("weights") / "dinov3", seed=0)


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_dinov3(tmp_path_factory.mktemp("weights") / "dinov3-new", seed=1)


@pytest.fixture(scope="module")
def embedder(weights: Path) -> Embedder:
    return Embedder.load(weights, device="cpu")


def _crops(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [
        Image.fromarray(rng.integers(0, 255, (30 + 7 * i, 50 + 3 * i, 3), dtype=np.uint8))
        for i in range(n)
    ]


def test_the_model_loads_from_its_folder_as_real_weights_do(
    embedder: Embedder, weights: Path
) -> None:
    from transformers import DINOv3ViTModel

    assert isinstance(embedder.model, DINOv3ViTModel)
    assert not embedder.model.training
    assert embedder.identity.name == "dinov3-vits16" and embedder.dim == 384
    assert embedder.identity.weights_sha256 == weights_sha256(weights)
    assert len(str(embedder.identity.weights_sha256)) == 64


def test_preprocessing_rescales_resizes_and_normalises_as_the_model_expects(
    embedder: Embedder, tmp_path: Path
) -> None:
    colour = (200, 120, 40)
    pixels = embedder.pixel_values([Image.new("RGB", (37, 91), colour)])
    assert tuple(pixels.shape) == (1, 3, 224, 224)
    for channel in range(3):
        expected = (colour[channel] / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert torch.allclose(pixels[0, channel], torch.tensor(expected), atol=1e-5)
    # A gradient survives the resize in order (bilinear, antialiased: no ringing past the ends).
    ramp = np.tile(np.linspace(0, 255, 300, dtype=np.float32), (20, 1)).astype(np.uint8)
    row = embedder.pixel_values([Image.fromarray(ramp).convert("RGB")])[0, 0, 100]
    assert bool(torch.all(row[1:] >= row[:-1] - 1e-4))
    # Pillow's resize is the processor's (torch's antialiased bilinear) to within rounding.
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    for h, w in ((90, 140), (400, 300)):
        base = rng.integers(0, 255, (h // 6 + 1, w // 6 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
        reference = F.interpolate(
            tensor, size=(224, 224), mode="bilinear", antialias=True, align_corners=False
        )[0]
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        ours = embedder.pixel_values([image])[0]
        assert float((ours - (reference - mean) / std).abs().max()) < 0.03  # ~1 grey level
        # The GPU path resizes with the processor's own operation (tried here on the CPU).
        on_device = embedder._device_resized([image], "cpu")[0]
        assert torch.allclose(on_device, (reference - mean) / std, atol=1e-5)
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {"size": {"height": 112, "width": 96}, "image_mean": [0.5] * 3, "image_std": [0.25] * 3}
        )
    )
    custom = Preprocessing.from_dir(tmp_path)
    assert (custom.height, custom.width, custom.mean, custom.std) == (
        112,
        96,
        (0.5,) * 3,
        (0.25,) * 3,
    )


def test_embeddings_are_unit_deterministic_and_independent_of_batching(
    embedder: Embedder,
) -> None:
    crops = _crops(9)
    one_by_one = embedder.embed_images(crops, batch_size=1)
    batched = embedder.embed_images(crops, batch_size=8)
    again = embedder.embed_images(crops, batch_size=8)
    assert one_by_one.shape == (9, 384) and one_by_one.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(batched, again)
    np.testing.assert_allclose(one_by_one, batched, atol=1e-4)
    assert float(batched[0] @ batched[1]) < 0.9999  # different crops, different vectors
    raw = embedder.forward(embedder.pixel_values(crops[:2])).numpy()
    np.testing.assert_allclose(
        batched[:2], raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6
    )


def test_a_folder_that_is_not_a_model_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a directory of model weights"):
        Embedder.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"no config\.json"):
        Embedder.load(tmp_path / "empty")
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text("{}")
    with pytest.raises(InvalidInput, match="no weights"):
        Embedder.load(config_only)
    from transformers import ViTConfig, ViTModel

    other = tmp_path / "vit"
    ViTModel(
        ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(other)
    with pytest.raises(InvalidInput, match="not a DINOv3"):
        Embedder.load(other)


def _batch(weights_sha: str | None, name: str = "dinov3-vits16", seed: int = 0) -> bytes:
    batch: dict[str, Any] = make_batch(
        f"dev-01/2026-11-21T0{seed}", seed=seed, track_offset=10 * seed
    )
    batch["embedder"] = {"name": name, "dim": 384}
    if weights_sha is not None:
        batch["embedder"]["weights_sha256"] = weights_sha
    return json.dumps(batch).encode()


def test_a_pinned_record_refuses_vectors_of_another_model(
    tmp_path: Path, embedder: Embedder, other_weights: Path
) -> None:
    record = create_record(str(tmp_path / "herd"), Settings(retention_enabled=False))
    pinned = str(embedder.identity.weights_sha256)
    record.pin_embedder(pinned)
    record = open_record(record.uri, record.settings)
    assert record.embedder.weights_sha256 == pinned
    other = weights_sha256(other_weights)
    report = ingest(
        record,
        [
            parse_json(_batch(pinned, seed=1), "same"),
            parse_json(_batch(None, seed=2), "unstated"),
            parse_json(_batch(other, seed=3), "other weights"),
            parse_json(_batch(pinned, name="clip-vitb16", seed=4), "other model"),
        ],
    )
    outcomes = {o.source: o for o in report.outcomes}
    assert outcomes["same"].status == "accepted"
    assert outcomes["unstated"].status == "accepted"
    for refused in ("other weights", "other model"):
        assert outcomes[refused].status == "rejected"
        problem = " ".join(outcomes[refused].problems)
        assert f"weights {pinned[:12]}" in problem and "herdrecord reembed" in problem
    with pytest.raises(InvalidInput, match="reembed"):
        record.pin_embedder(other)


def test_embed_and_embedder_commands(
    tmp_path: Path, weights: Path, other_weights: Path, embedder: Embedder
) -> None:
    crops = tmp_path / "crops"
    crops.mkdir()
    for i, image in enumerate(_crops(5)):
        image.save(crops / f"crop-{i}.jpg", quality=95)
    (crops / "notes.txt").write_text("not an image")
    path = tmp_path / "herd"
    made = runner.invoke(cli_app, ["init", str(path), "--weights", str(weights)])
    assert made.exit_code == 0, made.output
    shown = runner.invoke(cli_app, ["embedder", str(path)])
    assert weights_sha256(weights) in shown.output
    out = tmp_path / "vectors.parquet"
    result = runner.invoke(
        cli_app,
        ["embed", str(path), "--weights", str(weights), "--images", str(crops), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 5
    stored = np.asarray(table.column("embedding").combine_chunks().flatten()).reshape(5, 384)
    files = sorted(crops.glob("*.jpg"))
    expected = embedder.embed_jpegs([f.read_bytes() for f in files])
    np.testing.assert_allclose(stored, expected, atol=1e-5)
    refused = runner.invoke(
        cli_app, ["embed", str(path), "--weights", str(other_weights), "--images", str(crops)]
    )
    assert refused.exit_code != 0
    assert "never mix" in refused.output and "Traceback" not in refused.output
