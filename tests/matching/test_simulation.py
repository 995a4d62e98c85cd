"""Simulated customer queries: altered photos and attribute texts (what calibration and eval query with)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodmatch.matching.alterations import customer_photo
from prodmatch.matching.simulation import text_query
from prodmatch.models.preprocess import open_image
from prodmatch.stores.records import Product


def test_customer_photo_is_a_different_but_decodable_jpeg(myntra: Path) -> None:
    source = open_image(myntra / "images" / "36310.jpg", draft_short_side=512)
    source.thumbnail((800, 800))  # as simulation does: a phone photo's size, not the 1800 x 2400 original
    data = customer_photo(source, np.random.default_rng(1))
    altered = open_image(data)
    assert data[:2] == b"\xff\xd8" and altered.size != source.size
    assert customer_photo(source, np.random.default_rng(1)) == data  # seeded: reproducible


def test_text_query_uses_attributes_and_part_of_the_name() -> None:
    product = Product(
        "1",
        "Mr.Men Boys Blazing Yellow T-shirt",
        "",
        {"Colour": "Yellow", "Gender": "Boys", "ImageURL": "http://x/y.jpg", "n": 3},
    )
    query = text_query(product, np.random.default_rng(0))
    assert query.startswith("Yellow Boys ") and "http" not in query
    assert len(query.split()) == 2 + 3  # two attributes, half of the five name words (rounded up)
