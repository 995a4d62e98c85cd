"""A harder "customer photo" than alterations.py: several camera-like degradations stacked, each drawn with its
own probability and range from a seeded generator.

Order (what a phone does to a product on a table, roughly):

| step | probability | range |
|---|---|---|
| crop that cuts part of the product | 0.55 | keep 65-92% of each side, random position |
| colour: white balance (per-channel gain) | 0.5 | gains 0.9-1.1 |
| colour: brightness / contrast / saturation | 1.0 | +-16% / +-16% / +-20% |
| gamma | 0.33 | 0.87-1.16 |
| perspective warp (product tilted away from camera) | 0.45 | each corner moved up to 9% of the side |
| rotation | 1.0 | +-8 degrees |
| background: plain+noise, gradient, stripes/checks, clutter (1/4 each) | 1.0 | margin 1.0-1.26x |
| lighting gradient / vignette over the whole frame | 0.33 | 10-26% darker at one side / the corners |
| strong downscale then upscale back | 0.4 | short side 80-200 px (else a mild 40-100% rescale) |
| blur: Gaussian or motion (50/50) | 0.4 | radius 0.8-1.9 px / 5-12 px at any angle |
| sensor noise | 0.45 | sigma 1.3-6.5 grey levels |
| JPEG | 1.0 | quality 20-50 |

`customer_photo_hard(image, rng) -> JPEG bytes`. The ranges live in HardConfig. They were set on half of myntra-dev's
products only, so that the pipeline of the time (EfficientNet-lite0, whole-image vector) scored Recall@1 about 0.81
on the other half: at least as hard as an independent held-out check with customer-like photos (0.887).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter


@dataclass(frozen=True)
class HardConfig:
    """Defaults: the set REPORT.md measures (tuned on TUNE products only: current pipeline R@1 ~0.87)."""

    p_crop: float = 0.55
    crop_keep: tuple[float, float] = (0.65, 0.92)
    p_white_balance: float = 0.5
    wb_gain: float = 0.1
    brightness: float = 0.16
    contrast: float = 0.16
    saturation: float = 0.2
    p_gamma: float = 0.33
    gamma: tuple[float, float] = (0.87, 1.16)
    p_perspective: float = 0.45
    perspective: float = 0.09
    rotation: float = 8.0
    margin: tuple[float, float] = (1.0, 1.26)
    bg_kinds: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)  # plain, gradient, texture, clutter
    p_lighting: float = 0.33
    lighting: float = 0.26
    p_downscale: float = 0.4
    downscale_short: tuple[int, int] = (80, 200)
    p_blur: float = 0.4
    gauss_radius: tuple[float, float] = (0.8, 1.9)
    motion_len: tuple[int, int] = (5, 12)
    p_noise: float = 0.45
    noise_sigma: tuple[float, float] = (1.3, 6.5)
    jpeg_quality: tuple[int, int] = (20, 50)
    max_side: int = 1024


DEFAULT = HardConfig()


def customer_photo_hard(image: Image.Image, rng: np.random.Generator, config: HardConfig = DEFAULT) -> bytes:
    """JPEG bytes of a hard, customer-like photo of IMAGE (a catalog photo, RGB)."""
    c = config
    product = image.convert("RGB")
    if rng.random() < c.p_crop:
        product = random_crop(product, rng, c.crop_keep)
    product = colour_cast(product, rng, c)
    rgba = product.convert("RGBA")
    if rng.random() < c.p_perspective:
        rgba = perspective_warp(rgba, rng, c.perspective)
    rgba = rgba.rotate(float(rng.uniform(-c.rotation, c.rotation)), Image.Resampling.BICUBIC, expand=True)
    photo = on_background(rgba, rng, c.margin, c.bg_kinds)
    if rng.random() < c.p_lighting:
        photo = lighting_gradient(photo, rng, c.lighting)
    if rng.random() < c.p_downscale:
        photo = down_up(photo, rng, c.downscale_short)
    else:
        f = float(rng.uniform(0.4, 1.0))
        photo = photo.resize((max(64, int(photo.width * f)), max(64, int(photo.height * f))), Image.Resampling.BILINEAR)
    if rng.random() < c.p_blur:
        if rng.random() < 0.5:
            photo = photo.filter(ImageFilter.GaussianBlur(float(rng.uniform(*c.gauss_radius))))
        else:
            photo = motion_blur(
                photo, int(rng.integers(c.motion_len[0], c.motion_len[1] + 1)), float(rng.uniform(0, 180))
            )
    if rng.random() < c.p_noise:
        photo = add_noise(photo, rng, float(rng.uniform(*c.noise_sigma)))
    photo.thumbnail((c.max_side, c.max_side))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=int(rng.integers(c.jpeg_quality[0], c.jpeg_quality[1] + 1)))
    return buffer.getvalue()


def random_crop(image: Image.Image, rng: np.random.Generator, keep: tuple[float, float]) -> Image.Image:
    """Keep KEEP (fraction range) of each side at a random position: part of the product is cut off."""
    w, h = image.size
    kw, kh = int(w * rng.uniform(*keep)), int(h * rng.uniform(*keep))
    left, top = int(rng.integers(0, w - kw + 1)), int(rng.integers(0, h - kh + 1))
    return image.crop((left, top, left + kw, top + kh))


def colour_cast(image: Image.Image, rng: np.random.Generator, c: HardConfig = DEFAULT) -> Image.Image:
    """White balance (per-channel gains), brightness/contrast/saturation, gamma."""
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(1 - c.brightness, 1 + c.brightness)))
    image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(1 - c.contrast, 1 + c.contrast)))
    image = ImageEnhance.Color(image).enhance(float(rng.uniform(1 - c.saturation, 1 + c.saturation)))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    if rng.random() < c.p_white_balance:
        pixels = pixels * rng.uniform(1 - c.wb_gain, 1 + c.wb_gain, size=3).astype(np.float32)
    if rng.random() < c.p_gamma:
        pixels = np.clip(pixels, 0, 1) ** float(rng.uniform(*c.gamma))
    return Image.fromarray(np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8), "RGB")


def _perspective_coeffs(src: Sequence[tuple[float, float]], dst: Sequence[tuple[float, float]]) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output points DST to input points SRC."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    rhs = np.array([coord for point in src for coord in point], dtype=np.float64)
    coefficients: list[float] = np.linalg.solve(np.array(rows, dtype=np.float64), rhs).tolist()
    return coefficients


def perspective_warp(rgba: Image.Image, rng: np.random.Generator, strength: float) -> Image.Image:
    """Move each corner inwards/outwards by up to STRENGTH of the side (transparent fill)."""
    w, h = rgba.size
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    moved = [(x + rng.uniform(-strength, strength) * w, y + rng.uniform(-strength, strength) * h) for x, y in corners]
    xs, ys = [p[0] for p in moved], [p[1] for p in moved]
    shifted = [(x - min(xs), y - min(ys)) for x, y in moved]
    size = (int(max(xs) - min(xs)), int(max(ys) - min(ys)))
    coeffs = _perspective_coeffs(corners, shifted)
    return rgba.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)


def background(
    size: tuple[int, int], rng: np.random.Generator, kinds: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
) -> Image.Image:
    """A household surface: muted (grey level 60-245, tint +-20 per channel) plain+noise, a light fall-off
    gradient, low-contrast stripes/checks (fabric, wood, tiles), or plain with clutter (1-4 coloured objects)."""
    w, h = size
    base = np.clip(rng.uniform(60, 245) + rng.normal(0, 20, size=3), 0, 255).astype(np.float32)
    kind = int(rng.choice(4, p=np.asarray(kinds) / sum(kinds)))
    if kind == 1:  # gradient (light fall-off)
        other = base * float(rng.uniform(0.55, 0.95))
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        t = t[None, :, None] if len(t) == w else t[:, None, None]
        surface = base * (1 - t) + other * t + np.zeros((h, w, 3), np.float32)
    elif kind == 2:  # stripes or checks
        other = np.clip(base + rng.choice([-1, 1]) * rng.uniform(15, 45), 0, 255)
        period = int(rng.integers(8, 60))
        yy, xx = np.mgrid[0:h, 0:w]
        mask = (xx // period) % 2 if rng.random() < 0.5 else ((xx // period) + (yy // period)) % 2
        surface = np.where(mask[..., None] == 1, other, base).astype(np.float32)
    else:
        surface = np.zeros((h, w, 3), np.float32) + base
    surface += rng.normal(0, 6, size=(h, w, 3)).astype(np.float32)
    canvas = Image.fromarray(np.clip(surface, 0, 255).astype(np.uint8), "RGB")
    if kind == 3:  # clutter: a few solid objects
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(1, 5))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(w // 10, w // 3)), y0 + int(rng.integers(h // 10, h // 3))
            fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    return canvas


def on_background(
    rgba: Image.Image,
    rng: np.random.Generator,
    margin: tuple[float, float],
    kinds: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25),
) -> Image.Image:
    """Paste the product (with alpha) on a generated background, MARGIN times its size, at a random place."""
    m = float(rng.uniform(*margin))
    size = (max(rgba.width, int(rgba.width * m)), max(rgba.height, int(rgba.height * m)))
    canvas = background(size, rng, kinds)
    left = int(rng.integers(0, size[0] - rgba.width + 1))
    top = int(rng.integers(0, size[1] - rgba.height + 1))
    canvas.paste(rgba, (left, top), rgba)
    return canvas


def lighting_gradient(image: Image.Image, rng: np.random.Generator, strength: float) -> Image.Image:
    """Uneven light: darken linearly towards one side by up to STRENGTH, or a radial vignette."""
    w, h = image.size
    pixels = np.asarray(image, dtype=np.float32)
    amount = float(rng.uniform(0.1, strength))
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = ((xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle)) + 0.5
        gain = 1 - amount * np.clip(t, 0, 1)
    else:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.sqrt(((xx / w - 0.5) * 2) ** 2 + ((yy / h - 0.5) * 2) ** 2) / math.sqrt(2)
        gain = 1 - amount * r**2
    return Image.fromarray(np.clip(pixels * gain[..., None], 0, 255).astype(np.uint8), "RGB")


def down_up(image: Image.Image, rng: np.random.Generator, short: tuple[int, int]) -> Image.Image:
    """Downscale to a short side in SHORT (a distant or zoomed-in small product), then back up."""
    target = int(rng.integers(short[0], short[1] + 1))
    f = min(1.0, target / min(image.size))
    small = image.resize((max(16, int(image.width * f)), max(16, int(image.height * f))), Image.Resampling.BILINEAR)
    return small.resize(image.size, Image.Resampling.BILINEAR)


def motion_blur(image: Image.Image, length: int, angle_deg: float) -> Image.Image:
    """Average of LENGTH copies shifted along ANGLE (camera shake)."""
    pixels = np.asarray(image, dtype=np.float32)
    out = np.zeros_like(pixels)
    a = math.radians(angle_deg)
    for i in range(length):
        t = i - (length - 1) / 2
        out += np.roll(pixels, (round(t * math.sin(a)), round(t * math.cos(a))), axis=(0, 1))
    return Image.fromarray(np.clip(out / length, 0, 255).astype(np.uint8), "RGB")


def add_noise(image: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    return Image.fromarray(np.clip(pixels + rng.normal(0, sigma, pixels.shape), 0, 255).astype(np.uint8), "RGB")


# No-op end of every knob (a mild 40-100% rescale and JPEG 90 remain): used to measure each step alone and
# to scale the whole set's strength.
