"""The serve-at-scale benchmark's fill at a toy size: the catalog grows to the size asked, every filler vector
reaches its space's index (one add per space), and filler products read like the sample's."""

from __future__ import annotations

import numpy as np

from prodmatch.bench.serve_scale import grow
from prodmatch.composition import open_catalog
from prodmatch.config import Settings


def test_grow_fills_store_and_indexes_alike(fake_myntra: Settings) -> None:
    folder = fake_myntra.data_dir
    with open_catalog(Settings(data_dir=folder)) as catalog:
        sample = catalog.store.page(0, catalog.store.count())
    report = grow(folder, len(sample) + 130)
    assert report["size"] == len(sample) + 130 and set(report["index_kinds"]) == {"image", "text"}
    sample_words = {word for product in sample for word in (product.name or "").split()}
    with open_catalog(Settings(data_dir=folder)) as catalog:
        assert catalog.store.count() == len(sample) + 130
        for space in ("image", "text"):
            stored, indexed = catalog.store.vector_ids(space), catalog.stores.index(space).ids()
            assert np.array_equal(np.sort(stored), np.sort(indexed))
        assert catalog.stores.repairs == []  # nothing was left for the index check to repair
        filler = catalog.store.get(["s300"])["s300"]
    assert set((filler.name or "").split()) <= sample_words and 4 <= len((filler.name or "").split()) <= 7
    assert filler.attributes in [product.attributes for product in sample]
