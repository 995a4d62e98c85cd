"""Hybrid text search: the lexical index (plurals, multi-word attribute values, free words, filters) and the
service's fused text scores, refreshed when products are written or deleted. Fast tier on the fake model
(tests/fakes.py); the precision threshold on myntra-dev runs the real offline model (slow tier)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from prodmatch.application.products import delete_product, upsert_product
from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import Settings
from prodmatch.eval.text_precision import colour_type_queries, text_precision
from prodmatch.matching.lexical import AttributeMatcher, LexicalIndex, normalise
from prodmatch.models.bundle import Bundle
from prodmatch.stores.filters import parse_filters
from prodmatch.stores.protocols import MetadataStore
from prodmatch.stores.records import Product
from tests.fakes import FakeEmbedders
from tests.samples import match_words


def product(pid: str, name: str, **attributes: object) -> Product:
    return Product(pid, name, name, dict(attributes))


SMALL = [
    product("1", "Roadster Men Navy Blue T-shirt", Colour="Navy Blue", ProductType="Tshirts", price=499),
    product("2", "Roadster Men Blue T-shirt", Colour="Blue", ProductType="Tshirts", price=399),
    product("3", "Nike Air Max 270 Running Shoes", Colour="Black", ProductType="Shoes", price=9999),
    product("4", "Nike Air Zoom Pegasus", Colour="White", ProductType="Shoes", price=7999),
    product("5", "Levis Men Blue Jeans", Colour="Blue", ProductType="Jeans", price=1999),
    product("6", "Floral Summer Dresses", Colour="Navy Blue", ProductType="Dresses", price=1299),
]


def test_words_are_normalised_alike_for_products_and_queries() -> None:
    assert normalise("Navy Blue T-Shirts") == normalise("navy blue tshirt") == ["navy", "blue", "tshirt"]
    assert normalise("t shirts, Dresses & Accessories") == ["tshirt", "dress", "accessory"]
    assert normalise("Levis Jeans Shorts 270") == ["levis", "jeans", "shorts", "270"]  # "-is" and "-s" garments kept


def test_a_multi_word_value_is_one_phrase_never_also_its_last_word() -> None:
    matcher = AttributeMatcher([{"Colour": "Navy Blue"}, {"Colour": "Blue"}, {"ProductType": "Tshirts"}])
    phrases = matcher.recognise(normalise("navy blue tshirts"))
    assert [(p.span, sorted(p.values)) for p in phrases] == [
        ((0, 2), [("Colour", "Navy Blue")]),
        ((2, 3), [("ProductType", "Tshirts")]),
    ]
    assert [sorted(p.values) for p in matcher.recognise(normalise("blue t-shirt"))] == [
        [("Colour", "Blue")],
        [("ProductType", "Tshirts")],
    ]


def test_plural_and_singular_queries_find_the_same_products() -> None:
    index = LexicalIndex(SMALL)
    for query in ("navy blue tshirts", "navy blue t-shirt", "Navy Blue T Shirt"):
        asked = index.query(query)
        assert list(index.top(asked, 2)) == ["1", "2"], query  # the exact value first, the plain blue one after
        assert index.share(asked, "1") == 1.0 and index.share(asked, "2") == 0.5
        assert index.share(asked, "6") == 0.5  # navy blue, but a dress
        assert index.share(asked, "2") == 0.5  # its title says "blue t-shirt": "navy blue" is not held


def test_free_words_rank_by_bm25_and_unknown_words_lower_the_score() -> None:
    index = LexicalIndex(SMALL)
    asked = index.query("nike air max 270")
    assert list(index.top(asked, 2)) == ["3", "4"]
    assert asked.phrases == []  # no attribute value named: the attribute term does not count
    assert 0 < index.score(asked, "4") < index.score(asked, "3") < 1
    stranger = index.query("nike air max 270 zyxelbrand")
    assert index.score(stranger, "3") < index.score(asked, "3")  # a word the catalog lacks counts against
    assert index.top(index.query("zyxelbrand"), 5) == {}


def test_filters_apply_to_lexical_candidates() -> None:
    index = LexicalIndex(SMALL)
    asked = index.query("blue")
    assert set(index.top(asked, 10)) == {"1", "2", "5", "6"}
    assert set(index.top(asked, 10, parse_filters(["price<1000"]))) == {"1", "2"}
    assert set(index.top(asked, 10, parse_filters(["ProductType=jeans"]))) == {"5"}


def test_top_is_the_head_of_the_full_ranking_ties_and_narrow_filters_included() -> None:
    """top() sorts only the best rows: it must give exactly the head of the whole ranking (ties in id order),
    also when a narrow filter makes it read far down."""
    words = ["blue", "red", "shirt", "jeans", "navy", "cotton", "slim", "men"]
    products = [
        product(f"p{n:04d}", " ".join(words[(n * k) % len(words)] for k in range(1, 2 + n % 4)), group=f"g{n % 97}")
        for n in range(3000)
    ]
    index = LexicalIndex(products)
    for text in ("blue shirt", "navy", "slim men jeans"):
        asked = index.query(text)
        ranking = sorted(
            (pid for pid, score in zip(index.ids, asked.scores, strict=True) if score > 0),
            key=lambda pid: (-asked.scores[index.ids.index(pid)], pid),
        )
        assert list(index.top(asked, 10)) == ranking[:10]
        assert list(index.top(asked, 50)) == ranking[:50]
        narrow = [pid for pid in ranking if int(pid[1:]) % 97 == 5]  # ~1% of the products
        assert list(index.top(asked, 10, parse_filters(["group=g5"]))) == narrow[:10]


@pytest.fixture
def fake_catalog(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> Iterator[Catalog]:
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        yield catalog


def test_colour_and_type_queries_find_exactly_those_products(fake_catalog: Catalog) -> None:
    navy_tshirts = {
        p.id
        for p in fake_catalog.store.page(0, 1000)
        if p.attributes.get("Colour") == "Navy Blue" and p.attributes.get("ProductType") == "Tshirts"
    }
    assert len(navy_tshirts) == 13
    result = match_words(fake_catalog, "navy blue tshirts", top_k=20)
    assert {m.id for m in result.matches[:13]} == navy_tshirts  # no plain "Blue" tshirt among them
    assert all(0.0 <= m.score <= 1.0 for m in result.matches)
    dense_only = fake_catalog.matcher.settings.model_copy(update={"hybrid_text": False})
    fake_catalog.matcher.settings = dense_only
    dense = match_words(fake_catalog, "navy blue tshirts", top_k=20)
    assert {m.id for m in dense.matches[:13]} != navy_tshirts  # what the lexical half adds


def test_filters_still_apply_to_hybrid_text_matches(fake_catalog: Catalog) -> None:
    shirts = parse_filters(["ProductType=Shirts", "Colour!=Blue"])
    result = match_words(fake_catalog, "blue tshirts", top_k=30, filters=shirts)
    assert all(m.product["ProductType"] == "Shirts" and m.product["Colour"] != "Blue" for m in result.matches)
    assert len(result.matches) == min(30, fake_catalog.store.count(shirts)) > 0


def test_the_lexical_index_follows_upserts_and_deletes(fake_catalog: Catalog) -> None:
    before = match_words(fake_catalog, "zyxel quantum jacket", top_k=3)
    assert "new-1" not in {m.id for m in before.matches}
    upsert_product(fake_catalog, "new-1", {"name": "Zyxel Quantum Jacket", "Colour": "Teal"}, None)
    after = match_words(fake_catalog, "zyxel quantum jacket", top_k=3)
    print(
        [(m.id, m.score) for m in after.matches],
        [(m.id, m.score) for m in before.matches],
        fake_catalog.store.get(["new-1"]),
    )
    assert after.matches[0].id == "new-1" and after.matches[0].score > before.matches[0].score
    # its name says "jacket" (a ProductType value it does not have as an attribute): it holds that phrase too
    assert after.matches[0].score > max(m.score for m in after.matches[1:])
    upsert_product(fake_catalog, "new-1", {"name": "Plain Jacket", "Colour": "Teal"}, None)  # renamed
    assert match_words(fake_catalog, "teal", top_k=1).matches[0].id == "new-1"  # a new attribute value is known
    assert fake_catalog.facts.lexical().score(fake_catalog.facts.lexical().query("zyxel"), "new-1") == 0.0
    delete_product(fake_catalog, "new-1")
    assert "new-1" not in {m.id for m in match_words(fake_catalog, "teal plain jacket", top_k=10).matches}


def text_only_catalog(myntra: Path, folder: Path) -> Path:
    """myntra-dev without its photos: text precision needs text vectors only (and ingests in seconds)."""
    with open(myntra / "catalog.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    path = folder / "text-only.csv"
    keep = [key for key in rows[0] if key not in ("Image", "ImageURL")]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, keep, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_text_precision_on_myntra_dev(settings: Settings, myntra: Path, offline_bundle: Bundle, tmp_path: Path) -> None:
    """The CI threshold: colour + type precision of the top min(5, relevant) >= 0.90 with the real model (measured
    1.00; the dense search alone measures 0.67), and name queries no worse than the dense search."""
    with open_catalog(settings, model="offline-effnet-minilm", create=True) as catalog:
        catalog.ingester().ingest_file(text_only_catalog(myntra, tmp_path), ColumnOptions("ProductId", "ProductTitle"))
        catalog.facts.refresh()
        assert len(colour_type_queries(catalog.store.page(0, 1000))) == 49
        report = text_precision(catalog)
    assert report is not None
    assert report["hybrid"]["colour_type_precision"] >= 0.90
    assert report["dense"]["colour_type_precision"] <= report["hybrid"]["colour_type_precision"] - 0.15
    assert report["hybrid"]["name_recall@1"] >= report["dense"]["name_recall@1"]


def test_the_index_is_kept_until_the_catalog_changes(fake_catalog: Catalog) -> None:
    facts = fake_catalog.facts
    first = facts.lexical()
    assert facts.lexical() is first and len(first) == 250
    facts.refresh()
    assert facts.lexical() is not first


def test_an_index_built_across_a_write_serves_once_and_is_not_kept(
    fake_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts, build = fake_catalog.facts, LexicalIndex.build

    def build_while_a_write_lands(store: MetadataStore) -> LexicalIndex:
        facts.refresh()  # the catalog changed while the index was being read
        return build(store)

    monkeypatch.setattr(LexicalIndex, "build", staticmethod(build_while_a_write_lands))
    stale = facts.lexical()
    monkeypatch.undo()
    fresh = facts.lexical()
    assert fresh is not stale and facts.lexical() is fresh
