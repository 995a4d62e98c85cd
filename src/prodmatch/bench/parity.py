"""`prodmatch model parity`: how far each exported precision is from the PyTorch reference, on your photos.

For each precision: the cosine between bundle and reference vectors (image and text, min and mean), and how
often the bundle keeps fp32's top-1 neighbour, both among the photos themselves (leave-one-out) and for
customer-photo queries (each photo altered as in `prodmatch eval`). Copies of one photo (fp32 cosine >= 0.995)
count as the same neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.config import Settings
from prodmatch.matching.alterations import customer_photo
from prodmatch.models.factory import create_embedder, ensure_bundle
from prodmatch.models.preprocess import draft_side, open_image, to_tensor
from prodmatch.models.registry import Precision

SAME_PHOTO_COSINE = 0.995
PARITY_COLUMNS = (
    "precision",
    "image_cosine_min",
    "image_cosine_mean",
    "text_cosine_min",
    "text_cosine_mean",
    "top1_leave_one_out",
    "top1_customer_photos",
)
DEFAULT_TEXTS = [
    "Mr.Men Boys Blazing Yellow T-shirt",
    "girls pink floral dress with a bow",
    "Sony WH-1000XM5 wireless noise cancelling headphones, beige",
    "men's black leather jacket with zip pockets",
    "café crème — naïve 👟",
    "word " * 120,
]


def parity_report(
    name: str,
    settings: Settings,
    precisions: Sequence[Precision],
    photos: Sequence[Path],
    texts: Sequence[str] = DEFAULT_TEXTS,
    calibration_images: Sequence[Path] = (),
) -> dict[str, Any]:
    """Per precision: cosine to the reference and top-1 agreement with fp32 on PHOTOS."""
    fp32 = ensure_bundle(name, settings, "fp32")
    reference = create_embedder(fp32, settings, "torch")
    images = [open_image(path, draft_short_side=draft_side(fp32.manifest.image.preprocess)) for path in photos]
    pixels = to_tensor(images, fp32.manifest.image.preprocess)
    queries = [open_image(customer_photo(image, np.random.default_rng([7, i]))) for i, image in enumerate(images)]
    reference_images = reference.embed_pixels(pixels)
    reference_texts = reference.embed_texts(texts)
    fp32_onnx = create_embedder(fp32, settings)
    baseline = _neighbours(fp32_onnx.embed_pixels(pixels), fp32_onnx.embed_images(queries))
    rows = []
    for precision in precisions:
        embedder = create_embedder(ensure_bundle(name, settings, precision, calibration_images), settings)
        image_cos = np.sum(embedder.embed_pixels(pixels) * reference_images, axis=1)
        text_cos = np.sum(embedder.embed_texts(texts) * reference_texts, axis=1)
        ours = _neighbours(embedder.embed_pixels(pixels), embedder.embed_images(queries))
        same = baseline["same_photo"]
        rows.append(
            {
                "precision": precision,
                "image_cosine_min": round(float(image_cos.min()), 6),
                "image_cosine_mean": round(float(image_cos.mean()), 6),
                "text_cosine_min": round(float(text_cos.min()), 6),
                "text_cosine_mean": round(float(text_cos.mean()), 6),
                "top1_leave_one_out": round(float(np.mean(same[baseline["loo"], ours["loo"]])), 4),
                "top1_customer_photos": round(float(np.mean(same[baseline["query"], ours["query"]])), 4),
            }
        )
    return {"model": name, "photos": len(photos), "texts": len(texts), "rows": rows}


def _neighbours(catalog: np.ndarray, queries: np.ndarray) -> dict[str, np.ndarray]:
    """Top-1 catalog photo for each photo (excluding itself) and for each customer-photo query."""
    similarity = catalog @ catalog.T
    return {
        "loo": (similarity - 10 * np.eye(len(catalog))).argmax(axis=1),
        "query": (queries @ catalog.T).argmax(axis=1),
        "same_photo": similarity >= SAME_PHOTO_COSINE,
    }
