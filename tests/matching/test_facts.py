"""Cached catalog facts: a write to the catalog must never leave an answer built from stale facts."""

from __future__ import annotations

from prodmatch.application.products import delete_product, upsert_product
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from tests.fakes import FakeEmbedders
from tests.samples import match_words


def test_a_product_added_after_a_delete_is_found_although_it_reuses_a_vector_id(
    fake_myntra: Settings, fake_embedders: FakeEmbedders
) -> None:
    # SQLite gives the highest vector id out again once its row is gone: "b" gets "a"'s text vector id, and an
    # owner cached for that id while "a" lived would hide "b" from every answer.
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        reused = set()
        for product_id in ("a", "b", "c"):
            upsert_product(catalog, product_id, {"name": "zebra quilted poncho"}, None)
            reused |= set(catalog.store.vector_ids("text").tolist())
            assert match_words(catalog, "zebra quilted poncho", top_k=1).matches[0].id == product_id
            delete_product(catalog, product_id)
        assert len(reused) == 250 + 1  # the three products' text vectors had one id, each in turn
