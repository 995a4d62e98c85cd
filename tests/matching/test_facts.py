"""Cached catalog facts: a write to the catalog must never leave an answer built from stale facts, and the
lexical index kept between starts is used only for the catalog it was built from."""

from __future__ import annotations

import pytest

from prodmatch.application.products import delete_product, upsert_product
from prodmatch.composition import LEXICAL_FILE, open_catalog
from prodmatch.config import Settings
from prodmatch.matching.lexical import LexicalIndex
from tests.fakes import FakeEmbedders
from tests.samples import match_words


def test_a_product_added_after_a_delete_is_found_and_never_inherits_its_vector_id(
    fake_myntra: Settings, fake_embedders: FakeEmbedders
) -> None:
    # SQLite used to give the highest vector id out again once its row was gone; AUTOINCREMENT (migration 0005)
    # never does, so no cached "id -> product" can name a deleted product's successor.
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        seen = set()
        for product_id in ("a", "b", "c"):
            upsert_product(catalog, product_id, {"name": "zebra quilted poncho"}, None)
            seen |= set(catalog.store.vector_ids("text").tolist())
            assert match_words(catalog, "zebra quilted poncho", top_k=1).matches[0].id == product_id
            delete_product(catalog, product_id)
        assert len(seen) == 250 + 3  # each product's text vector had an id of its own


def builds_counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per lexical index built from the products from now on (each build reads every product)."""
    built: list[int] = []
    build = LexicalIndex.build.__func__  # type: ignore[attr-defined]

    def counted(cls: type[LexicalIndex], store: object) -> LexicalIndex:
        built.append(1)
        return build(cls, store)  # type: ignore[no-any-return]

    monkeypatch.setattr(LexicalIndex, "build", classmethod(counted))
    return built


def test_the_lexical_index_is_kept_between_starts_until_the_catalog_changes(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        first = match_words(catalog, "navy blue tshirt", top_k=5)
    assert (fake_myntra.data_dir / LEXICAL_FILE).is_file()
    read = builds_counted(monkeypatch)
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        again = match_words(catalog, "navy blue tshirt", top_k=5)
        assert read == []  # loaded, not rebuilt from the products
        assert [(m.id, m.score) for m in again.matches] == [(m.id, m.score) for m in first.matches]
        upsert_product(catalog, "zz", {"name": "navy blue tshirt zebra"}, None)
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        assert match_words(catalog, "zebra", top_k=1).matches[0].id == "zz"
        assert read  # the saved index named an older catalog: rebuilt
        read.clear()
        delete_product(catalog, "zz")
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        assert all(m.id != "zz" for m in match_words(catalog, "navy blue tshirt zebra", top_k=20).matches)
        assert read  # a delete changes the catalog too


def test_an_unreadable_saved_index_is_rebuilt(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> None:
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        expected = [m.id for m in match_words(catalog, "navy blue tshirt", top_k=5).matches]
    (fake_myntra.data_dir / LEXICAL_FILE).write_bytes(b"not a pickle")
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        assert [m.id for m in match_words(catalog, "navy blue tshirt", top_k=5).matches] == expected
    assert (fake_myntra.data_dir / LEXICAL_FILE).read_bytes() != b"not a pickle"  # written again
