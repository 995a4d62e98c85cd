"""The matching service: ranking, filters inside the search, several images per product, text and photo scores
fused in a shared space. Fast tier on the fake model (tests/fakes.py); the slow tier checks the same first answers
with the real offline model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import MatchingSettings, Settings
from prodmatch.errors import FilterError, InvalidQueryError
from prodmatch.matching.verification import BONUS
from prodmatch.models.bundle import Bundle
from prodmatch.stores.filters import parse_filters
from tests.fakes import FakeEmbedders
from tests.samples import ingest_myntra, match_photo, match_words

COLOUR = MatchingSettings().colour_weight  # the same photo: colour similarity 1 (up to resizing)


@pytest.fixture
def fake_catalog(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> Iterator[Catalog]:
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        yield catalog


def test_a_catalog_photo_matches_its_product_first(fake_catalog: Catalog, myntra: Path, fake_bundle: Bundle) -> None:
    result = match_photo(fake_catalog, myntra / "images" / "36310.jpg", top_k=5)
    assert result.matches[0].id == "36310" and result.matches[0].score == pytest.approx(1.0 + BONUS + COLOUR, abs=5e-3)
    assert result.model == fake_bundle.manifest.name and result.took_ms > 0
    assert result.matches[0].product["name"] == "Mr.Men Boys Blazing Yellow T-shirt"
    assert [m.score for m in result.matches] == sorted((m.score for m in result.matches), reverse=True)
    assert len({m.id for m in result.matches}) == 5


def test_filters_run_inside_the_search(fake_catalog: Catalog, myntra: Path) -> None:
    store = fake_catalog.store
    query = myntra / "images" / "36310.jpg"
    for expression, want in (("Colour=Green", 10), ("ProductType=Kurtas", 1), ("Colour!=Blue", 10)):
        filters = parse_filters([expression])
        passing = store.count(filters)
        result = match_photo(fake_catalog, query, top_k=10, filters=filters)
        assert len(result.matches) == min(10, passing) == want, expression
        key, _, value = expression.replace("!=", "=").partition("=")
        same = [str(m.product[key]).lower() == value.lower() for m in result.matches]
        assert all(same) if "!=" not in expression else not any(same), expression


def test_text_query_searches_the_text_space(fake_catalog: Catalog, fake_embedders: FakeEmbedders) -> None:
    result = match_words(fake_catalog, "Doodle Boys Grand Prix White Shirt", top_k=3)
    assert result.matches[0].id == "10649" and 0.5 < result.matches[0].score <= 1.0  # hybrid (test_lexical.py)
    assert fake_embedders.last.calls == [("text", 1)]
    vector = fake_catalog.embedder().embed_texts(["Doodle Boys Grand Prix White Shirt"])[0]
    assert fake_catalog.matcher.text_query_scores(vector, 3)["10649"] == pytest.approx(1.0, abs=1e-5)  # dense


def test_out_of_range_top_k_and_unknown_filter_keys_are_refused(fake_catalog: Catalog) -> None:
    for top_k in (0, 1001, 10_000):
        with pytest.raises(InvalidQueryError, match="top_k must be between 1 and 1000"):
            match_words(fake_catalog, "shirt", top_k=top_k)
    with pytest.raises(FilterError, match="unknown filter key 'Size'"):
        match_words(fake_catalog, "shirt", filters=parse_filters(["Size=M"]))
    assert len(match_words(fake_catalog, "shirt", top_k=1000).matches) == 250  # the limits are inclusive


@pytest.fixture
def electronics_multi_image(shared_data: Path, tmp_path: Path) -> Path:
    """electronics-small with all images of a brand on one product (a product may list several images)."""
    items = json.loads((shared_data / "electronics-small" / "metadata.json").read_text())
    shutil.copytree(shared_data / "electronics-small" / "images", tmp_path / "images")
    rows = [{**item, "image_path": Path(item["image_path"]).name} for item in items[:3]]
    rows[0]["image_path"] = [f"Sony headphone- {i}.jpg" for i in (1, 2, 3, 4)]
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(rows))
    return catalog


def test_a_product_with_several_images_scores_as_its_best_image_and_appears_once(
    electronics_multi_image: Path, settings: Settings, fake_bundle: Bundle
) -> None:
    with open_catalog(settings, model=str(fake_bundle.folder), create=True, embedders=FakeEmbedders()) as catalog:
        catalog.ingester().ingest_file(electronics_multi_image, ColumnOptions())
        for n in (1, 3):  # product 1's first photo, and a later one (also product 2's only photo)
            photo = electronics_multi_image.parent / "images" / f"Sony headphone- {n}.jpg"
            result = match_photo(catalog, photo, top_k=3)
            assert [m.id for m in result.matches].count("1") == 1
            assert result.matches[0].score == pytest.approx(1.0 + BONUS + COLOUR, abs=5e-3) and "1" in {
                m.id for m in result.matches if m.score > 0.99
            }
        assert len(catalog.store.get(["1"])["1"].images) == 4
        assert len(catalog.store.vector_ids("image")) == 4 + 2


def test_shared_space_text_queries_fuse_text_and_image_scores(
    electronics_multi_image: Path, settings: Settings, fake_shared_bundle: Bundle
) -> None:
    model = str(fake_shared_bundle.folder)
    with open_catalog(settings, model=model, create=True, embedders=FakeEmbedders()) as catalog:
        catalog.ingester().ingest_file(electronics_multi_image, ColumnOptions())
        catalog.matcher.settings = settings.matching.model_copy(update={"hybrid_text": False})  # the dense part
        result = match_words(catalog, "wireless headphones", top_k=3)
        query = catalog.embedder().embed_texts(["wireless headphones"])[0]
        weight = settings.matching.text_weight
        for found in result.matches:
            text = float(catalog.store.product_vectors([found.id], "text")[1][0] @ query)
            image = float(np.max(catalog.store.product_vectors([found.id], "image")[1] @ query))
            assert found.score == pytest.approx(weight * text + (1 - weight) * image, abs=1e-5)
        assert len(result.matches) == 3


# The slow tier: the same first answers with the real offline model.


@pytest.fixture(scope="module")
def myntra_catalog(
    base_settings: Settings, myntra: Path, tmp_path_factory: pytest.TempPathFactory, offline_bundle: Bundle
) -> Iterator[Catalog]:
    settings = base_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("myntra")})
    catalog = ingest_myntra(settings, myntra)
    yield catalog
    catalog.close()


def test_the_offline_model_finds_a_catalog_photo_and_its_title(myntra_catalog: Catalog, myntra: Path) -> None:
    result = match_photo(myntra_catalog, myntra / "images" / "36310.jpg", top_k=5)
    assert result.matches[0].id == "36310" and result.matches[0].score > 0.99
    assert result.model == "offline-effnet-minilm"
    assert match_words(myntra_catalog, "Doodle Boys Grand Prix White Shirt", top_k=3).matches[0].id == "10649"
