"""Keyframes: small top-view JPEG crops of a pig, drawn with Pillow.

A crop covers a fixed patch of floor (2.2 m wide) around the animal, so a heavier pig
fills more of it. The body is an ellipse (length ~0.33 m x weight^(1/3)) with a head,
a skin tone and markings seeded per animal, turned by its heading and lit by the camera-day.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from herdrecord.simulation.behaviour import LYING_LATERAL, SITTING

CROP_WIDTH_M = 2.2  # floor width one keyframe shows
BODY_LENGTH_M_PER_KG13 = 0.33  # body length, m = this x weight^(1/3): 1.0 m at 30 kg
PINK = (236.0, 182.0, 168.0)
BROWN = (150.0, 96.0, 62.0)
BROWN_SHARE = 0.15  # share of pigs with a brown (e.g. Duroc-cross) coat
FLOOR = (146.0, 146.0, 140.0)
MAX_SPOTS = 4
PIXEL_NOISE = 6  # sensor noise, +- grey levels


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


def floor_image(light: Lighting, size_px: tuple[int, int]) -> Image.Image:
    """Return the empty slatted pen floor under a camera-day's light (reused for every crop)."""
    width, height = size_px
    image = Image.new("RGB", size_px, _rgb(FLOOR, light))
    draw = ImageDraw.Draw(image)
    slat = _rgb(tuple(0.75 * c for c in FLOOR), light)
    for y in range(0, height, 6):
        draw.line([(0, y), (width, y)], fill=slat)
    return image


def render_keyframe(
    coat: Coat,
    weight_kg: float,
    heading_rad: float,
    state: int,
    light: Lighting,
    floor: Image.Image,
    quality: int,
    rng: np.random.Generator,
) -> bytes:
    """Return a JPEG of one pig seen from above, centred on a copy of `floor`."""
    width, height = floor.size
    px_per_m = width / CROP_WIDTH_M
    length_px = BODY_LENGTH_M_PER_KG13 * weight_kg ** (1.0 / 3.0) * px_per_m
    aspect = 2.2 if state == LYING_LATERAL else 1.6 if state == SITTING else 2.8
    a, b = length_px / 2.0, length_px / (2.0 * aspect)
    image = floor.copy()
    draw = ImageDraw.Draw(image)
    place = (width / 2.0, height / 2.0, float(np.cos(heading_rad)), float(np.sin(heading_rad)))
    head = _ellipse((0.95 * a, 0.0), 0.32 * a, 0.7 * b, place, None)
    draw.polygon(head, fill=_rgb(tuple(0.9 * c for c in coat.tone), light))
    draw.polygon(_ellipse((0.0, 0.0), a, b, place, None), fill=_rgb(coat.tone, light))
    for u, v, radius, darkness in coat.spots:
        spot = _ellipse((u * a, v * b), radius * b * 1.6, radius * b, place, (a, b))
        draw.polygon(spot, fill=_rgb(tuple((1.0 - darkness) * c for c in coat.tone), light))
    pixels = np.asarray(image, dtype=np.int16)
    pixels = pixels + rng.integers(-PIXEL_NOISE, PIXEL_NOISE + 1, pixels.shape, dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        out, format="JPEG", quality=quality
    )
    return out.getvalue()


def _rgb(color: tuple[float, ...], light: Lighting) -> tuple[int, int, int]:
    """Return a colour under the camera-day's light."""
    r, g, b = (c * light.brightness for c in color)
    r *= 1.0 + 0.12 * light.warmth
    b *= 1.0 - 0.12 * light.warmth
    return (int(min(r, 255.0)), int(min(g, 255.0)), int(min(b, 255.0)))


def _ellipse(
    offset: tuple[float, float],
    a: float,
    b: float,
    place: tuple[float, float, float, float],
    clip_to: tuple[float, float] | None,
) -> list[tuple[float, float]]:
    """Return polygon points of an ellipse in body coordinates, turned and placed in the crop.

    `place` is (centre x, centre y, cos heading, sin heading). With `clip_to` (body
    semi-axes) the points are pulled inside the body outline, so a marking never spills
    onto the floor.
    """
    u = offset[0] + a * _COS
    v = offset[1] + b * _SIN
    if clip_to is not None:
        r = np.sqrt((u / clip_to[0]) ** 2 + (v / clip_to[1]) ** 2)
        shrink = np.where(r > 0.97, 0.97 / np.maximum(r, 1e-9), 1.0)
        u, v = u * shrink, v * shrink
    cx, cy, c, s = place
    x = cx + u * c - v * s
    y = cy + u * s + v * c
    return list(zip(x.tolist(), y.tolist(), strict=True))


_ANGLES = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
_COS, _SIN = np.cos(_ANGLES), np.sin(_ANGLES)
