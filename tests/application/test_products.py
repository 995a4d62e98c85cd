"""Editing products keeps the local features (geometric verification) in step, whatever the stores: a new photo's
features are stored, a replaced or deleted photo's go with it, and a photo another product still shows stays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from prodmatch.application.products import delete_product, upsert_product
from prodmatch.composition import open_catalog
from prodmatch.config import CatalogLocation, Settings
from prodmatch.models.bundle import Bundle
from tests.conftest import StoreUrl
from tests.fakes import FakeEmbedders
from tests.samples import match_photo


@pytest.mark.parametrize(
    ("metadata", "vectors"), [("sqlite", "faiss"), ("postgresql", "pgvector"), ("mongodb", "qdrant+local")]
)
def test_features_follow_upsert_and_delete(
    metadata: str, vectors: str, store_url: StoreUrl, settings: Settings, fake_bundle: Bundle, myntra: Path
) -> None:
    location = CatalogLocation(Path(settings.data_dir), store_url(metadata), store_url(vectors))
    first, second = (myntra / "images" / f"{name}.jpg" for name in ("36310", "10649"))
    sha = {photo: hashlib.sha256(photo.read_bytes()).hexdigest() for photo in (first, second)}
    with open_catalog(
        settings, location=location, model=str(fake_bundle.folder), create=True, embedders=FakeEmbedders()
    ) as catalog:
        stored = lambda photo: catalog.files.features_path("orb", sha[photo]).is_file()  # noqa: E731
        upsert_product(catalog, "a", {"name": "yellow tee"}, first.read_bytes())
        upsert_product(catalog, "b", {"name": "also the yellow tee"}, first.read_bytes())
        assert stored(first)
        assert (match_photo(catalog, first).inliers or 0) >= 100  # verified against the stored features
        upsert_product(catalog, "a", {"name": "white shirt"}, second.read_bytes())
        assert stored(second) and stored(first)  # "b" still shows the first photo
        delete_product(catalog, "b")
        assert not stored(first) and stored(second)
        delete_product(catalog, "a")
        assert not stored(second)
