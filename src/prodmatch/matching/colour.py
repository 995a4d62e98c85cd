"""Colour as a re-ranking cue: a hue / saturation histogram of a photo, compared by the Bhattacharyya coefficient.

Why: the global vector of a phone photo of produce (a lemon in a crate among other fruit) often ranks a fruit of the
same shape first; colour tells a red apple from a green one, and a yellow pepper from a red one, where shape and
texture do not. A product gains weight x the similarity of its best photo (matching/verification.py): a photo learned
from a customer's confirmation (the same shop light as the next customer's) weighs 0.2, a studio catalog photo 0.05
(its colours are further from a phone photo's). Tuned on grocery-dev split seeds 1-2: zero-shot Recall@1 0.451 ->
0.514 and 0.472 -> 0.500, after 2 confirmed photos per product 0.736 -> 0.826 and 0.833 -> 0.889 (docs/benchmarks.md,
"Real customer photos, round 2"); a single weight of 0.2 for both lost zero-shot packaged goods (-0.07 to -0.09).

The histogram: 12 hues x 4 saturations for coloured pixels, 4 value bins for greys (52 bins), square-rooted and
L2-normalised so that the dot product of two is the Bhattacharyya coefficient in [0, 1]. Near-white pixels are left
out of every photo: on a catalog photo they are the studio backdrop, on a phone photo mostly glare, and neither says
what colour the product is (and a photo scores 1 against itself).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HUE_BINS, SATURATION_BINS, GREY_BINS = 12, 4, 4
BINS = HUE_BINS * SATURATION_BINS + GREY_BINS
_SIDE = 96  # the histogram of a 96 x 96 thumbnail is the photo's to within noise, and costs ~1 ms
_MIN_KEPT = 50  # a photo that is nearly all white keeps its white pixels: something must be described
_CHROMA = 0.15  # below this saturation or value a pixel has no reliable hue: it counts by its grey level


def histogram(image: Image.Image, drop_white: bool = False) -> np.ndarray:
    """(BINS,) float32, unit length. DROP_WHITE leaves out near-white pixels (catalog photos on a studio white)."""
    small = image.convert("RGB").resize((_SIDE, _SIDE), Image.Resampling.BILINEAR).convert("HSV")
    hsv = np.asarray(small, np.float32).reshape(-1, 3) / 255.0
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    keep = ~((sat < 0.12) & (val > 0.85)) if drop_white else np.ones(len(hue), bool)
    if keep.sum() < _MIN_KEPT:
        keep = np.ones(len(hue), bool)
    hue, sat, val = hue[keep], sat[keep], val[keep]
    chroma = (sat >= _CHROMA) & (val >= _CHROMA)
    counts = np.zeros(BINS, np.float64)
    hue_bin = np.minimum((hue[chroma] * HUE_BINS).astype(int), HUE_BINS - 1)
    sat_bin = np.minimum(((sat[chroma] - _CHROMA) / (1 - _CHROMA) * SATURATION_BINS).astype(int), SATURATION_BINS - 1)
    np.add.at(counts, hue_bin * SATURATION_BINS + sat_bin, 1.0)
    grey_bin = np.minimum((val[~chroma] * GREY_BINS).astype(int), GREY_BINS - 1)
    np.add.at(counts, HUE_BINS * SATURATION_BINS + grey_bin, 1.0)
    hist: np.ndarray = np.sqrt(counts / max(counts.sum(), 1.0)).astype(np.float32)
    return hist


def pack(hist: np.ndarray) -> bytes:
    return hist.astype(np.float16).tobytes()


def unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, np.float16).astype(np.float32)


def fuse_colour(scores: dict[str, float], terms: dict[str, float]) -> dict[str, float]:
    """SCORES with each product's colour term (weight x similarity) added (a product without one gains nothing)."""
    return {pid: score + terms.get(pid, 0.0) for pid, score in scores.items()}
