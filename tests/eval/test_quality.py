"""`prodmatch eval` on myntra-dev with the offline pair: the quality bar of the catalog issue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.config import Settings
from prodmatch.eval.alter import customer_photo
from prodmatch.eval.quality import evaluate_catalog, summarise, text_query
from prodmatch.models.bundle import Bundle
from prodmatch.models.preprocess import open_image
from prodmatch.stores.records import Product


@pytest.mark.slow
def test_myntra_image_recall_at_1_is_at_least_095(
    myntra: Path, base_settings: Settings, offline_bundle: Bundle
) -> None:
    report = evaluate_catalog(
        base_settings,
        myntra / "catalog.csv",
        ColumnOptions("ProductId", "ProductTitle", "Image"),
        None,
        "offline-effnet-minilm",
        ["images", "text"],
    )
    images, text = report["metrics"]["images"], report["metrics"]["text"]
    assert report["products"] == 250 and images["n"] == 250 and text["n"] == 250
    assert images["recall@1"] >= 0.95
    assert images["byte_identical_duplicates_only"]["recall@1"] <= images["recall@1"]
    assert 0 < text["recall@1"] <= text["recall@5"] <= 1


def test_customer_photo_is_a_different_but_decodable_jpeg(myntra: Path) -> None:
    source = open_image(myntra / "images" / "36310.jpg")
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


def test_summarise_counts_ranks() -> None:
    assert summarise([1, 2, None, 1]) == {"n": 4, "recall@1": 0.5, "recall@5": 0.75, "mrr": 0.625}
