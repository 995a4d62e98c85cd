"""Turn a catalog photo into what a customer's photo of the same product looks like.

Each query gets, with its own seeded random draws: a crop (75-95% of each side), a rotation of up to
±10°, a colour shift (brightness, contrast, saturation ±20%), a rescale (40-100%), a background margin
(a plain coloured surface with sensor-like noise, 10-40% wider) and JPEG recompression (quality 50-85).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance


def customer_photo(image: Image.Image, rng: np.random.Generator) -> bytes:
    """JPEG bytes of an altered copy of IMAGE."""
    altered = _crop(image, rng)
    altered = _colour_shift(altered, rng)
    altered = _rescale(altered, rng)
    altered = _on_background(altered, rng)
    buffer = io.BytesIO()
    altered.save(buffer, format="JPEG", quality=int(rng.integers(50, 86)))
    return buffer.getvalue()


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    keep_w, keep_h = (int(side * rng.uniform(0.75, 0.95)) for side in (width, height))
    left, top = int(rng.integers(0, width - keep_w + 1)), int(rng.integers(0, height - keep_h + 1))
    return image.crop((left, top, left + keep_w, top + keep_h))


def _colour_shift(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(float(rng.uniform(0.8, 1.2)))
    return image


def _rescale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    factor = float(rng.uniform(0.4, 1.0))
    size = (max(64, int(image.width * factor)), max(64, int(image.height * factor)))
    return image.resize(size, Image.Resampling.BILINEAR)


def _on_background(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate by up to ±10° and place on a noisy plain surface with a margin."""
    margin = float(rng.uniform(1.1, 1.4))
    canvas_size = (int(image.width * margin), int(image.height * margin))
    colour = rng.integers(90, 256, size=3)
    noise = rng.normal(0, 6, size=(canvas_size[1], canvas_size[0], 3))
    surface = np.clip(colour + noise, 0, 255).astype(np.uint8)
    canvas = Image.fromarray(surface, "RGB")
    rotated = image.convert("RGBA").rotate(float(rng.uniform(-10, 10)), Image.Resampling.BICUBIC, expand=True)
    left = int(rng.integers(0, max(1, canvas_size[0] - rotated.width + 1)))
    top = int(rng.integers(0, max(1, canvas_size[1] - rotated.height + 1)))
    canvas.paste(rotated, (left, top), rotated)
    return canvas
