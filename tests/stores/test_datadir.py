"""Data dirs: the index is checked against the stored vectors on open and repaired."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodmatch.catalog.ingest import CatalogIngester, ColumnOptions
from prodmatch.config import Settings
from prodmatch.errors import NotFoundError
from prodmatch.models.bundle import Bundle
from prodmatch.stores.datadir import DataDir
from prodmatch.stores.faiss_index import FaissIndex


def build(settings: Settings, shared_data: Path) -> None:
    datadir = DataDir.open(settings, model="offline-effnet-minilm", create=True)
    catalog = shared_data / "myntra-dev" / "catalog.csv"
    CatalogIngester(datadir).ingest_file(catalog, ColumnOptions("ProductId", "ProductTitle", "Image"))
    datadir.close()


def test_opening_a_missing_data_dir_says_how_to_create_it(settings: Settings) -> None:
    with pytest.raises(NotFoundError, match="run `prodmatch ingest"):
        DataDir.open(settings)


def test_lost_and_stale_index_files_are_repaired_from_stored_vectors(
    settings: Settings, shared_data: Path, offline_bundle: Bundle
) -> None:
    build(settings, shared_data)
    (settings.data_dir / "vectors-image.faiss").unlink()  # lost
    text_path = settings.data_dir / "vectors-text.faiss"
    stale = FaissIndex(text_path, 384, settings.index)
    stale.remove(stale.ids()[:10].tolist())
    stale.add(np.array([999_999]), np.ones((1, 384), np.float32) / np.sqrt(384))  # a vector the store never had
    stale.save()

    datadir = DataDir.open(settings)
    try:
        for space in ("image", "text"):
            assert np.array_equal(np.sort(datadir.index(space).ids()), np.sort(datadir.store.vector_ids(space)))
        repairs = {r.space: (r.added, r.removed) for r in datadir.repairs}
        assert repairs == {"image": (250, 0), "text": (10, 1)}
    finally:
        datadir.close()
    reopened = DataDir.open(settings)
    reopened.index("image"), reopened.index("text")
    assert reopened.repairs == []  # the repair was saved
    reopened.close()
