"""Benchmark the embedder: crops per second at batch sizes 1, 8 and 32, beside the same
model's raw `forward` in the same run.

The model is a DINOv3 ViT-S/16 of the real architecture (384-d, 12 layers, 6 heads, 4
register tokens, patch 16, 224 px input: the compute of the real one), randomly initialised
and saved to a folder, then loaded by `Embedder.load` exactly as real weights are (the public
checkpoint is gated and cannot be downloaded here). The crops are JPEG-decoded images of
varied sizes, as keyframes are.

Side by side, per batch size, medians of --repeats alternating runs:
  raw       `model(pixel_values=...)` over input already prepared on the device (the floor);
  embedder  `Embedder.embed_images(crops)`: preprocessing (rescale, resize, normalise) on the
            device, the forward, L2-normalisation and the copy back to NumPy;
  overhead = embedder s / raw s - 1 (target <= 10 %).
On CUDA the model runs in float16 (the embedder's default there), raw and embedder alike.

Run: `.venv/bin/python benchmarks/embed.py [--device cpu|cuda] [--crops N]`. Writes
benchmarks/results/embed-<device>.json and the table in benchmarks/README.md (both devices'
rows, from whichever result files exist). On a machine that has torch and transformers but
not the record's stack (a GPU box), the embedder module is loaded on its own.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
try:
    from herdrecord.embedding.model import Embedder
except ImportError:  # torch and transformers, but not lancedb & co.: the module alone
    package = types.ModuleType("herdrecord")
    package.__path__ = [str(HERE.parent / "src" / "herdrecord")]
    sys.modules["herdrecord"] = package
    from herdrecord.embedding.model import Embedder

BATCHES = (1, 8, 32)


def main() -> None:
    """Run the benchmark on one device and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--crops", type=int, default=None, help="default: 64 on CPU, 1024 GPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="result file (default results/)")
    args = parser.parse_args()
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    crops = args.crops or (1024 if kind == "cuda" else 64)
    result = run(args.device, crops, args.repeats)
    out = args.out or HERE / "results" / f"embed-{kind}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.out is None:
        update_readme()
    print(json.dumps(result["rows"], indent=2))


def run(device: str, n: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    config = DINOv3ViTConfig(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        patch_size=16,
        image_size=224,
        num_register_tokens=4,
    )
    with tempfile.TemporaryDirectory() as folder:
        DINOv3ViTModel(config).save_pretrained(folder)
        embedder = Embedder.load(Path(folder), device=device)
    crops = _crops(n)
    rows = []
    for batch in BATCHES:
        count = n if batch > 1 or embedder.device == "cuda" else min(n, 32)
        chosen = crops[:count]
        prepared = [
            embedder.pixel_values(chosen[i : i + batch], embedder.device)
            for i in range(0, count, batch)
        ]
        _raw(embedder, prepared[:2])  # warm-up (kernels, allocator)
        embedder.embed_images(chosen[: 2 * batch], batch)
        raw_s, ours_s = [], []
        for _ in range(repeats):
            raw_s.append(_raw(embedder, prepared))
            ours_s.append(_timed(lambda c=chosen, b=batch: embedder.embed_images(c, b), embedder))
        raw, ours = statistics.median(raw_s), statistics.median(ours_s)
        rows.append(
            {
                "batch": batch,
                "crops": count,
                "raw_crops_per_s": round(count / raw, 1),
                "embedder_crops_per_s": round(count / ours, 1),
                "overhead_pct": round(100 * (ours / raw - 1), 1),
                "raw_s": [round(s, 4) for s in raw_s],
                "embedder_s": [round(s, 4) for s in ours_s],
            }
        )
        print(rows[-1], flush=True)
    return {
        "benchmark": "embed",
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": embedder.device,
        "device_name": torch.cuda.get_device_name(0)
        if embedder.device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "dtype": str(embedder.model.dtype),
        "torch": torch.__version__,
        "rows": rows,
    }


def _raw(embedder: Embedder, prepared: list[Any]) -> float:
    def forward_all() -> None:
        for pixels in prepared:
            embedder.forward(pixels)

    return _timed(forward_all, embedder)


def _timed(work: Any, embedder: Embedder) -> float:
    if embedder.device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    work()
    if embedder.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def _crops(n: int) -> list[Image.Image]:
    """Return `n` decoded JPEG crops of varied sizes (as keyframes are)."""
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(80, 200)), int(rng.integers(120, 260))
        base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        out.append(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return out


def update_readme() -> None:
    """Replace the embedder table in benchmarks/README.md with the result files' rows."""
    lines = ["<!-- embed:start -->"]
    for kind in ("cpu", "cuda"):
        path = HERE / "results" / f"embed-{kind}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        lines += [
            "",
            f"{result['device']} ({result['device_name']}, {result['dtype']}, torch "
            f"{result['torch']}, {result['threads']} threads), {result['when']}:",
            "",
            "| batch | crops | raw forward crops/s | embedder crops/s | overhead |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['batch']} | {r['crops']} | {r['raw_crops_per_s']} | "
            f"{r['embedder_crops_per_s']} | {r['overhead_pct']} % |"
            for r in result["rows"]
        ]
    lines.append("<!-- embed:end -->")
    readme = HERE / "README.md"
    text = readme.read_text()
    if "<!-- embed:start -->" not in text:
        text += "\n<!-- embed:start -->\n<!-- embed:end -->\n"
    head, rest = text.split("<!-- embed:start -->", 1)
    tail = rest.split("<!-- embed:end -->", 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
