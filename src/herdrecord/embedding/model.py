"""The embedder: a DINOv3 ViT-S/16 (384-d) through `transformers`, from a local directory of
weights, and the identity (name, dimension, metric, SHA-256 of the weights) a record pins.

The public checkpoint is gated, so nothing here downloads: the weights are a directory the
farm copied once (`config.json`, `model.safetensors`, optionally `preprocessor_config.json`),
loaded with `local_files_only`. Crops are prepared as the model's own image processor does
(resize to its input size with bilinear filtering, antialiased when shrinking; rescale to
0..1; normalise with its mean and std) without torchvision: Pillow resizes, torch does the
arithmetic on the model's device. The pooled output (the class token after the final layer
norm) is L2-normalised.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from herdrecord.errors import InvalidInput

DEFAULT_NAME = "dinov3-vits16"
METRIC = "cosine"
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what DINOv3's image processor uses by default
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224
WEIGHT_SUFFIXES = (".safetensors", ".bin")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class EmbedderId:
    """What a record pins about the model its vectors come from."""

    name: str
    dim: int
    metric: str
    weights_sha256: str | None  # None: a record made before weights were pinned

    def describe(self) -> str:
        """Return e.g. 'dinov3-vits16 (384-d cosine, weights 3f2a9c1d0b7e)'."""
        weights = f", weights {self.weights_sha256[:12]}" if self.weights_sha256 else ""
        return f"{self.name} ({self.dim}-d {self.metric}{weights})"


@dataclass(frozen=True)
class Preprocessing:
    """How crops become the model's input: size, then (x / 255 - mean) / std per channel."""

    height: int = DEFAULT_SIZE
    width: int = DEFAULT_SIZE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_dir(cls, weights: Path) -> Preprocessing:
        """Return the preprocessing the weights' `preprocessor_config.json` states (the
        model's defaults where it is absent or silent)."""
        path = weights / "preprocessor_config.json"
        if not path.exists():
            return cls()
        try:
            config: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{path}: not readable JSON ({exc})") from exc
        size = config.get("size") or {}
        if isinstance(size, dict):
            edge = size.get("shortest_edge") or DEFAULT_SIZE
            height, width = int(size.get("height") or edge), int(size.get("width") or edge)
        else:
            height = width = int(size)
        mean = tuple(float(v) for v in config.get("image_mean", IMAGENET_MEAN))
        std = tuple(float(v) for v in config.get("image_std", IMAGENET_STD))
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0 or min(height, width) < 16:
            raise InvalidInput(f"{path}: image_mean/image_std need 3 values, std > 0, size >= 16")
        return cls(height, width, (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))


def weights_sha256(weights: Path) -> str:
    """Return the SHA-256 over the model's config, preprocessing and weight files (names and
    bytes, in name order): the identity a record pins."""
    files = sorted(
        p
        for p in weights.iterdir()
        if p.name in ("config.json", "preprocessor_config.json") or p.suffix in WEIGHT_SUFFIXES
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def check_weights_dir(weights: Path) -> None:
    """Raise InvalidInput unless `weights` holds a config and weights the model can load."""
    if not weights.is_dir():
        raise InvalidInput(
            f"{weights} is not a directory of model weights: give the folder holding "
            "config.json and model.safetensors (DINOv3 is gated: copy it there once by hand)"
        )
    if not (weights / "config.json").exists():
        raise InvalidInput(f"{weights} has no config.json: it is not a transformers checkpoint")
    if not any(p.suffix in WEIGHT_SUFFIXES for p in weights.iterdir()):
        raise InvalidInput(f"{weights} has config.json but no weights (*.safetensors or *.bin)")


class Embedder:
    """A loaded DINOv3 model and its preprocessing; embeds crops into unit vectors."""

    def __init__(
        self, model: Any, preprocessing: Preprocessing, identity: EmbedderId, device: str
    ) -> None:
        self.model = model
        self.preprocessing = preprocessing
        self.identity = identity
        self.device = device
        self._pool: ThreadPoolExecutor | None = None
        self._constants: dict[str, Any] = {}  # mean and std, on each device used

    @classmethod
    def load(
        cls,
        weights: Path,
        name: str = DEFAULT_NAME,
        device: str = "auto",
        half: bool | None = None,
    ) -> Embedder:
        """Load the model in `weights` (never from the network) on `device` ("auto": CUDA
        when present, else CPU); `half` runs it in float16 (default: on CUDA only)."""
        import torch
        from transformers import DINOv3ViTConfig, DINOv3ViTModel
        from transformers.utils import logging as hf_logging

        check_weights_dir(weights)
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        config = DINOv3ViTConfig.from_pretrained(weights, local_files_only=True)
        if getattr(config, "model_type", None) != "dinov3_vit":
            raise InvalidInput(
                f"{weights}: model_type is {config.model_type!r}, not a DINOv3 ViT (dinov3_vit)"
            )
        chosen = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if chosen.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInput(f"device {chosen}: no CUDA GPU is available here; use cpu")
        if chosen != "cpu" and not chosen.startswith("cuda"):
            raise InvalidInput(f"device {chosen!r}: give auto, cpu, cuda or cuda:N")
        model: Any = DINOv3ViTModel.from_pretrained(weights, local_files_only=True)
        half = chosen.startswith("cuda") if half is None else half
        model = model.to(chosen, dtype=torch.float16 if half else torch.float32).eval()
        identity = EmbedderId(name, int(config.hidden_size), METRIC, weights_sha256(weights))
        return cls(model, Preprocessing.from_dir(weights), identity, chosen)

    @property
    def dim(self) -> int:
        """Return the dimension of the vectors."""
        return self.identity.dim

    def pixel_values(self, images: Sequence[Image.Image], device: str = "cpu") -> Any:
        """Return the model input (n, 3, H, W) float32 of crops, as its processor makes it:
        resize to the input size (bilinear, antialiased when shrinking: Pillow's filter),
        rescale to 0..1, normalise with the model's mean and std. The resized crops travel
        to `device` as one uint8 block; the arithmetic runs there. On CUDA the crops are
        resized there instead (`_device_resized`)."""
        if device.startswith("cuda"):
            return self._device_resized(images, device)
        return self._normalised([self._resized(image) for image in images], device)

    def _resized(self, image: Image.Image) -> np.ndarray:
        p = self.preprocessing
        resized = _rgb(image).resize((p.width, p.height), Image.Resampling.BILINEAR)
        return np.asarray(resized)

    def _normalised(self, crops: Sequence[np.ndarray], device: str) -> Any:
        import torch

        p = self.preprocessing
        cuda = device.startswith("cuda")
        # Page-locked on CUDA (PyTorch caches those buffers): the copy then runs beside the
        # model instead of waiting for it.
        block = torch.empty((len(crops), p.height, p.width, 3), dtype=torch.uint8, pin_memory=cuda)
        view = block.numpy()
        for i, crop in enumerate(crops):
            view[i] = crop
        pixels = block.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        mean, std = self._mean_std(device)
        return (pixels - mean) / std

    def forward(self, pixel_values: Any) -> Any:
        """Return the model's pooled output for prepared input (the raw forward)."""
        import torch

        with torch.inference_mode():
            weight = self.model.embeddings.patch_embeddings.weight
            inputs = pixel_values.to(self.device, dtype=weight.dtype, non_blocking=True)
            return self.model(pixel_values=inputs).pooler_output

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Return (n, dim) float32 unit vectors of the crops, `batch_size` at a time.

        Pillow resizes the next batch's crops in worker threads (it lets go of the GIL)
        while the model runs on this one; the vectors stay on the device until the end."""

        if batch_size < 1:
            raise InvalidInput(f"batch size {batch_size} must be at least 1")
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        if self.device.startswith("cuda"):
            pooled = [self.forward(self._device_resized(batch, self.device)) for batch in batches]
            return self._unit(pooled)
        pool = self._workers()
        ahead = [pool.submit(self._resized, image) for image in batches[0]]
        pooled = []
        for k in range(len(batches)):
            crops = [future.result() for future in ahead]
            if k + 1 < len(batches):
                ahead = [pool.submit(self._resized, image) for image in batches[k + 1]]
            pooled.append(self.forward(self._normalised(crops, self.device)))
        return self._unit(pooled)

    @staticmethod
    def _unit(pooled: list[Any]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            vectors = torch.cat(pooled).float()
            vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
            out: np.ndarray = vectors.cpu().numpy()
        return out

    def _device_resized(self, images: Sequence[Image.Image], device: str) -> Any:
        """Return the model input of crops resized on `device` exactly as the processor
        does (torch's antialiased bilinear): the crops travel as one page-locked block of
        bytes, one copy, and are resized there (on a GPU, where host threads would fight
        the model's kernel launches for the interpreter)."""
        import torch
        import torch.nn.functional as F

        p = self.preprocessing
        arrays = [np.asarray(_rgb(image)) for image in images]
        cuda = device.startswith("cuda")
        block = torch.empty(sum(a.size for a in arrays), dtype=torch.uint8, pin_memory=cuda)
        flat = block.numpy()
        offsets = [0]
        for array in arrays:
            flat[offsets[-1] : offsets[-1] + array.size] = array.reshape(-1)
            offsets.append(offsets[-1] + array.size)
        on_device = block.to(device, non_blocking=True)
        resized = []
        with torch.inference_mode():
            for array, start in zip(arrays, offsets, strict=False):
                crop = on_device[start : start + array.size].view(array.shape)
                crop = crop.permute(2, 0, 1)[None].float()
                resized.append(
                    F.interpolate(
                        crop,
                        size=(p.height, p.width),
                        mode="bilinear",
                        antialias=True,
                        align_corners=False,
                    )
                )
            pixels = torch.cat(resized).div_(255.0)
            mean, std = self._mean_std(device)
            return (pixels - mean) / std

    def _mean_std(self, device: str) -> tuple[Any, Any]:
        import torch

        if device not in self._constants:
            p = self.preprocessing
            mean = torch.tensor(p.mean, device=device).view(1, 3, 1, 1)
            std = torch.tensor(p.std, device=device).view(1, 3, 1, 1)
            self._constants[device] = (mean, std)
        found: tuple[Any, Any] = self._constants[device]
        return found

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="herdrecord-resize"
            )
        return self._pool

    def embed_jpegs(self, jpegs: Iterable[bytes], batch_size: int = 32) -> np.ndarray:
        """Return unit vectors of JPEG crops (keyframe bytes)."""
        return self.embed_images([decode(b) for b in jpegs], batch_size)


def _rgb(image: Image.Image) -> Image.Image:
    """Return the image in RGB (itself when it is already: no copy)."""
    return image if image.mode == "RGB" else image.convert("RGB")


def decode(data: bytes) -> Image.Image:
    """Return the image in `data` (JPEG, PNG ...), or raise InvalidInput saying it is not one."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"not an image ({exc})") from exc
    return image


def image_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Yield the image files among `paths`, a directory's images in name order."""
    suffixes = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
        elif path.exists():
            yield path
        else:
            raise InvalidInput(f"{path} does not exist")
