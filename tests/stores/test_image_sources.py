"""Every metadata backend keeps each image's source URL (where a downloaded photo came from) and gives it back."""

from __future__ import annotations

import pytest

from prodmatch.stores.factory import open_metadata_store
from prodmatch.stores.records import ImageRef, Product, ProductUpsert
from tests.conftest import StoreUrl


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mongodb"])
def test_image_source_urls_round_trip(kind: str, store_url: StoreUrl) -> None:
    store = open_metadata_store(store_url(kind))
    try:
        images = [
            ImageRef("/data/images/ab/ab12.jpg", "ab12", source_url="https://cdn.example.com/a.jpg?sig=REDACTED"),
            ImageRef("/catalog/local.jpg", "cd34"),
        ]
        store.upsert([ProductUpsert(Product("p1", "Shirt", "Shirt", {"colour": "red"}, images, "h", "e"), None)])
        stored = store.get(["p1"])["p1"]
        assert [ref.source_url for ref in stored.images] == ["https://cdn.example.com/a.jpg?sig=REDACTED", None]
        shown = stored.as_dict()
        assert shown["sources"] == ["https://cdn.example.com/a.jpg?sig=REDACTED", None]
        assert shown["images"] == ["/data/images/ab/ab12.jpg", "/catalog/local.jpg"]
    finally:
        store.close()


def test_products_without_downloaded_images_show_no_sources() -> None:
    product = Product("p2", "Mug", "Mug", {}, [ImageRef("/catalog/mug.jpg", "ef56")])
    assert "sources" not in product.as_dict()
