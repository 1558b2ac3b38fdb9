"""Keyframes: small top-view JPEG crops of a pig, drawn with Pillow.

A crop covers a fixed patch of floor (2.2 m wide) around the animal, so a heavier pig
fills more of it. The body is an ellipse (length ~0.33 m x weight^(1/3)) with a head,
a skin tone and markings seeded per animal, turned by its heading and lit by the camera-day.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from herdrecord.simulation.behaviour import LYING_LATERAL, SITTING

CROP_WIDTH_M = 2.2  # floor width one keyframe shows
BODY_LENGTH_M_PER_KG13 = 0.33  # body length, m = this x weight^(1/3): 1.0 m at 30 kg
PINK = (236.0, 182.0, 168.0)
BROWN = (150.0, 96.0, 62.0)
BROWN_SHARE = 0.15  # share of pigs with a brown (e.g. Duroc-cross) coat
FLOOR = (146.0, 146.0, 140.0)
MAX_SPOTS = 4
PIXEL_NOISE = 6  # sensor noise, +- grey levels
NOISE_TILES = 16  # precomputed noise patterns, one picked per crop
ASPECT, ASPECT_LATERAL, ASPECT_SITTING = 2.8, 2.2, 1.6  # body length / width


@dataclass(frozen=True)
class Coat:
    """How one animal looks from above: skin tone (RGB 0-255) and markings."""

    tone: tuple[float, float, float]
    spots: tuple[tuple[float, float, float, float], ...]  # (u, v, radius, darkness) on the body


@dataclass(frozen=True)
class Lighting:
    """A camera-day's light: brightness factor and warmth (-1 blue .. +1 amber)."""

    brightness: float
    warmth: float


def draw_coats(n: int, twin_of: np.ndarray, rng: np.random.Generator) -> list[Coat]:
    """Return each animal's coat; near-twins share their pair's coat."""
    coats: list[Coat] = []
    for i in range(n):
        if twin_of[i] >= 0:
            coats.append(coats[int(twin_of[i])])
            continue
        base = np.array(BROWN if rng.random() < BROWN_SHARE else PINK)
        tone = np.clip(base * rng.normal(1.0, 0.05, 3), 0.0, 255.0)
        n_spots = int(rng.integers(0, MAX_SPOTS + 1))
        spots = tuple(
            (
                float(rng.uniform(-0.7, 0.7)),
                float(rng.uniform(-0.6, 0.6)),
                float(rng.uniform(0.15, 0.4)),
                float(rng.uniform(0.25, 0.6)),
            )
            for _ in range(n_spots)
        )
        coats.append(Coat((float(tone[0]), float(tone[1]), float(tone[2])), spots))
    return coats


class KeyframePainter:
    """Render a herd's keyframes, caching floors, body outlines and noise between crops."""

    def __init__(
        self, coats: list[Coat], size_px: tuple[int, int], quality: int, rng: np.random.Generator
    ) -> None:
        self.coats = coats
        self.size_px = size_px
        self.quality = quality
        self._floors: dict[Lighting, Image.Image] = {}
        self._outlines: dict[tuple[int, float], np.ndarray] = {}
        shape = (size_px[1], size_px[0], 3)
        self._noise = [
            Image.fromarray(rng.integers(0, 2 * PIXEL_NOISE + 1, shape, dtype=np.uint8))
            for _ in range(NOISE_TILES)
        ]

    def render(
        self,
        animal: int,
        weight_kg: float,
        heading_rad: float,
        state: int,
        light: Lighting,
        rng: np.random.Generator,
    ) -> bytes:
        """Return a JPEG of one pig seen from above, centred in the crop."""
        width, height = self.size_px
        coat = self.coats[animal]
        aspect = (
            ASPECT_LATERAL
            if state == LYING_LATERAL
            else ASPECT_SITTING
            if state == SITTING
            else ASPECT
        )
        length_px = BODY_LENGTH_M_PER_KG13 * weight_kg ** (1.0 / 3.0) * width / CROP_WIDTH_M
        a, b = length_px / 2.0, length_px / (2.0 * aspect)
        c, s = np.cos(heading_rad), np.sin(heading_rad)
        unit = self._outline(animal, aspect)  # (shapes, points, 2) in units of (a, b)
        u, v = unit[..., 0] * a, unit[..., 1] * b
        x = width / 2.0 + u * c - v * s
        y = height / 2.0 + u * s + v * c
        image = self._floor(light).copy()
        draw = ImageDraw.Draw(image)
        colours = [tuple(0.9 * t for t in coat.tone), coat.tone] + [
            tuple((1.0 - spot[3]) * t for t in coat.tone) for spot in coat.spots
        ]
        for k, colour in enumerate(colours):
            points = list(zip(x[k].tolist(), y[k].tolist(), strict=True))
            draw.polygon(points, fill=_rgb(colour, light))
        noise = self._noise[int(rng.integers(0, NOISE_TILES))]
        image = ImageChops.add(image, noise, scale=1.0, offset=-PIXEL_NOISE)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=self.quality)
        return out.getvalue()

    def _floor(self, light: Lighting) -> Image.Image:
        """Return the empty slatted pen floor under a camera-day's light."""
        if light not in self._floors:
            width, height = self.size_px
            image = Image.new("RGB", self.size_px, _rgb(FLOOR, light))
            draw = ImageDraw.Draw(image)
            slat = _rgb(tuple(0.75 * c for c in FLOOR), light)
            for y in range(0, height, 6):
                draw.line([(0, y), (width, y)], fill=slat)
            self._floors[light] = image
        return self._floors[light]

    def _outline(self, animal: int, aspect: float) -> np.ndarray:
        """Return head, body and marking polygons (shapes, points, 2) in units of (a, b)."""
        key = (animal, aspect)
        if key not in self._outlines:
            coat = self.coats[animal]
            shapes = [_ellipse(0.95, 0.0, 0.32, 0.7), _ellipse(0.0, 0.0, 1.0, 1.0)]
            for u, v, radius, _ in coat.spots:
                # Markings are round on the skin: radius in units of the body's half-width.
                spot = _ellipse(u, v, radius * 1.6 / aspect, radius)
                r = np.hypot(spot[:, 0], spot[:, 1])
                spots_inside = np.where(r > 0.97, 0.97 / np.maximum(r, 1e-9), 1.0)
                shapes.append(spot * spots_inside[:, None])
            self._outlines[key] = np.stack(shapes)
        return self._outlines[key]


def _rgb(color: tuple[float, ...], light: Lighting) -> tuple[int, int, int]:
    """Return a colour under the camera-day's light."""
    r, g, b = (c * light.brightness for c in color)
    r *= 1.0 + 0.12 * light.warmth
    b *= 1.0 - 0.12 * light.warmth
    return (int(min(r, 255.0)), int(min(g, 255.0)), int(min(b, 255.0)))


def _ellipse(u: float, v: float, a: float, b: float) -> np.ndarray:
    """Return 16 points (16, 2) of an ellipse centred at (u, v) with semi-axes (a, b)."""
    return np.stack([u + a * _COS, v + b * _SIN], axis=1)


_ANGLES = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
_COS, _SIN = np.cos(_ANGLES), np.sin(_ANGLES)
