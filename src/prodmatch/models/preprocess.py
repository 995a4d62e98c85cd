"""Image decoding and model preprocessing with PIL + NumPy (no torchvision at run time).

Decoding is defensive: every way an upload can be unusable ends in InvalidImageError, the one error type
callers need to handle. The preprocessing reproduces torchvision's Resize(short side) + CenterCrop + Normalize,
which is what the CLIP and EfficientNet references use.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from prodmatch.errors import InvalidImageError
from prodmatch.models.registry import Preprocess

MIN_IMAGE_SIDE = 16
# JPEG draft decoding scales by 1/2, 1/4 or 1/8 in the DCT, keeping at least this multiple of the model's
# resize target on the short side; the final resize then works from a much smaller image.
DRAFT_FACTOR = 2
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
_HIGH_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def open_image(
    source: bytes | Path | str,
    *,
    label: str | None = None,
    max_pixels: int = 50_000_000,
    draft_short_side: int | None = None,
) -> Image.Image:
    """Decode SOURCE into an upright 8-bit RGB image, or raise InvalidImageError saying why.

    draft_short_side lets JPEG decoding scale down by DCT (up to 8x faster) while keeping at least
    that many pixels on the short side.
    """
    label = label or ("image" if isinstance(source, bytes) else str(source))
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InvalidImageError(f"{label}: cannot open: {exc.strerror or exc}") from exc
    with fp:
        try:
            image = Image.open(fp)
            _check_pixels(image, max_pixels, label)
            if draft_short_side and image.format == "JPEG":
                image.draft("RGB", _draft_size(image.size, draft_short_side))
            image.load()
        except InvalidImageError:
            raise
        except UnidentifiedImageError as exc:
            raise InvalidImageError(f"{label}: not a decodable image (unknown or unsupported format)") from exc
        except Image.DecompressionBombError as exc:
            raise InvalidImageError(f"{label}: not a decodable image ({exc})") from exc
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InvalidImageError(f"{label}: corrupt or truncated image ({exc})") from exc
        # In place: the image is ours, and a copy of a large photo costs about as much as a resize (ingest speed).
        ImageOps.exif_transpose(image, in_place=True)
        return _to_rgb(image, label)


def _check_pixels(image: Image.Image, max_pixels: int, label: str) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{label}: {width}x{height} pixels exceeds the limit of {max_pixels} (decompression bomb guard)"
        )
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InvalidImageError(f"{label}: {width}x{height} is too small; each side needs {MIN_IMAGE_SIDE}+ px")


def draft_side(spec: Preprocess) -> int:
    """The short side to decode JPEGs to for a model with preprocessing SPEC."""
    return DRAFT_FACTOR * spec.resize_short


def _draft_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    scale = short_side / min(size)
    return (math.ceil(size[0] * scale), math.ceil(size[1] * scale))


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    """Flatten any mode (CMYK, 16-bit, palette, alpha) to RGB; transparency becomes white, as on a shop page."""
    if image.mode in _HIGH_BIT_MODES:
        image = Image.fromarray(_to_uint8(np.asarray(image)), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode == "RGB":
        return image  # convert() would copy it
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise InvalidImageError(f"{label}: unsupported image mode {image.mode!r}") from exc


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit or float grey levels into 0..255."""
    values = pixels.astype(np.float64)
    peak = float(values.max()) if values.size else 0.0
    if pixels.dtype.kind == "f" and peak <= 1.0:
        values = values * 255.0
    elif peak > 255:
        values = values / 257.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def resize_and_crop(image: Image.Image, spec: Preprocess) -> Image.Image:
    """torchvision Resize(spec.resize_short) then CenterCrop(spec.crop), on a PIL image."""
    width, height = image.size
    short, long_ = (width, height) if width <= height else (height, width)
    new_long = int(spec.resize_short * long_ / short)
    new_size = (spec.resize_short, new_long) if width <= height else (new_long, spec.resize_short)
    resized = image.resize(new_size, _RESAMPLE[spec.interpolation])
    left = round((new_size[0] - spec.crop) / 2.0)
    top = round((new_size[1] - spec.crop) / 2.0)
    return resized.crop((left, top, left + spec.crop, top + spec.crop))


def to_tensor(images: Sequence[Image.Image], spec: Preprocess) -> np.ndarray:
    """A float32 NCHW batch, resized, cropped and normalised for the model."""
    table = _normalised_levels(spec.mean, spec.std)
    batch = np.empty((len(images), 3, spec.crop, spec.crop), dtype=np.float32)
    for row, image in enumerate(images):
        levels = np.asarray(resize_and_crop(image, spec), dtype=np.uint8)
        for channel in range(3):
            batch[row, channel] = table[channel][levels[:, :, channel]]
    return batch


def _normalised_levels(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(3, 256) float32: ((level / 255) - mean) / std for every 8-bit level of each channel, computed with the same
    float32 operations as normalising each pixel, so looking pixels up in it gives the same bits, several times
    faster (one table read per value instead of three array passes)."""
    levels = np.arange(256, dtype=np.float32) / 255.0
    means = np.asarray(mean, dtype=np.float32).reshape(3, 1)
    stds = np.asarray(std, dtype=np.float32).reshape(3, 1)
    return (levels.reshape(1, 256) - means) / stds


def signature(image: Image.Image, side: int = 16) -> bytes:
    """A SIDE x SIDE RGB thumbnail: equal within a grey level or so for re-encoded copies of one photo."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() would copy an RGB image
    return rgb.resize((side, side), Image.Resampling.BOX).tobytes()
