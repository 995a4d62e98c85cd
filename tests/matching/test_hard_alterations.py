"""The hard customer-photo set: seeded, decodable, and really harder than the easy set (further from the source)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodmatch.matching.alterations import customer_photo
from prodmatch.matching.hard_alterations import customer_photo_hard
from prodmatch.models.preprocess import open_image


def pixel_distance(source: np.ndarray, photo: bytes) -> float:
    altered = open_image(photo).resize((64, 64))
    return float(np.abs(np.asarray(altered, np.float32) - source).mean())


def test_hard_photos_are_reproducible_jpegs_further_from_the_source_than_easy_ones(myntra: Path) -> None:
    photos = [open_image(path) for path in sorted((myntra / "images").glob("*.jpg"))[:12]]
    easy, hard = [], []
    for i, photo in enumerate(photos):
        photo.thumbnail((800, 800))
        source = np.asarray(photo.resize((64, 64)), np.float32)
        made = customer_photo_hard(photo, np.random.default_rng([5, i]))
        assert made[:2] == b"\xff\xd8" and made == customer_photo_hard(photo, np.random.default_rng([5, i]))
        hard.append(pixel_distance(source, made))
        easy.append(pixel_distance(source, customer_photo(photo, np.random.default_rng([5, i]))))
    assert np.median(hard) > np.median(easy)
