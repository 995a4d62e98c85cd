"""Opening a catalog: a missing one says how to make it; the index is checked against the stored vectors on open
and repaired; the model is made by the factory given, once, and closed with the catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import Settings
from prodmatch.errors import ModelMismatchError, NotFoundError
from prodmatch.models.bundle import IMAGE_GRAPH, Bundle, write_manifest
from prodmatch.stores.faiss_index import FaissIndex
from tests.fakes import FakeEmbedders, fake_manifest, make_fake_bundle

PRODUCTS = 250


def test_opening_a_missing_data_dir_says_how_to_create_it(settings: Settings) -> None:
    with pytest.raises(NotFoundError, match="run `prodmatch ingest"):
        Catalog.open(settings)
    assert not (settings.data_dir / "metadata.db").exists()  # looking did not create one


def test_lost_and_stale_index_files_are_repaired_from_stored_vectors(fake_myntra: Settings) -> None:
    settings = fake_myntra
    (settings.data_dir / "vectors-image.faiss").unlink()  # lost
    text_path = settings.data_dir / "vectors-text.faiss"
    stale = FaissIndex(text_path, 96, settings.index)
    stale.remove(stale.ids()[:10].tolist())
    stale.add(np.array([999_999]), np.ones((1, 96), np.float32) / np.sqrt(96))  # a vector the store never had
    stale.save()

    datadir = Catalog.open(settings, embedders=FakeEmbedders())
    try:
        for space in ("image", "text"):
            assert np.array_equal(np.sort(datadir.stores.index(space).ids()), np.sort(datadir.store.vector_ids(space)))
        repairs = {r.space: (r.added, r.removed) for r in datadir.stores.repairs}
        assert repairs == {"image": (PRODUCTS, 0), "text": (10, 1)}
    finally:
        datadir.close()
    reopened = Catalog.open(settings, embedders=FakeEmbedders())
    reopened.stores.index("image"), reopened.stores.index("text")
    assert reopened.stores.repairs == []  # the repair was saved
    reopened.close()


def test_the_model_is_made_once_by_the_factory_given_and_closed_with_the_catalog(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, fake_bundle: Bundle
) -> None:
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        assert fake_embedders.made == []  # nothing loads until it is needed
        assert catalog.embedder() is catalog.embedder() is fake_embedders.last
        assert catalog.record.fingerprint == fake_bundle.manifest.fingerprint
    assert len(fake_embedders.made) == 1 and fake_embedders.last.closed


def test_a_bundle_that_changed_since_the_catalog_was_built_is_refused(settings: Settings, tmp_path: Path) -> None:
    bundle = make_fake_bundle(tmp_path / "bundle")
    with open_catalog(settings, model=str(bundle.folder), create=True, embedders=FakeEmbedders()) as catalog:
        assert catalog.embedder().fingerprint == bundle.manifest.fingerprint
    (bundle.folder / IMAGE_GRAPH).write_text("another image graph\n")  # re-exported in place: other vectors
    write_manifest(bundle.folder, fake_manifest(shared_space=False))
    with (
        open_catalog(settings, embedders=FakeEmbedders()) as catalog,
        pytest.raises(ModelMismatchError, match="fingerprint"),
    ):
        catalog.embedder()
