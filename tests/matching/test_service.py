"""The matching service on real catalogs and real bundles."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prodmatch.catalog.ingest import CatalogIngester, ColumnOptions
from prodmatch.config import Settings
from prodmatch.errors import FilterError, InvalidQueryError
from prodmatch.matching.service import MatchService
from prodmatch.models.bundle import Bundle
from prodmatch.models.preprocess import open_image
from prodmatch.stores.datadir import DataDir
from prodmatch.stores.filters import parse_filters
from tests.samples import ingest_myntra


@pytest.fixture(scope="module")
def myntra_service(
    base_settings: Settings, myntra: Path, tmp_path_factory: pytest.TempPathFactory, offline_bundle: Bundle
) -> Iterator[MatchService]:
    settings = base_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("myntra")})
    datadir = ingest_myntra(settings, myntra)
    yield MatchService(datadir)
    datadir.close()


def test_a_catalog_photo_matches_its_product_first(myntra_service: MatchService, myntra: Path) -> None:
    result = myntra_service.match_image(open_image(myntra / "images" / "36310.jpg"), top_k=5)
    assert result.matches[0].id == "36310" and result.matches[0].score > 0.99
    assert result.model == "offline-effnet-minilm" and result.took_ms > 0
    assert result.matches[0].product["name"] == "Mr.Men Boys Blazing Yellow T-shirt"
    assert [m.score for m in result.matches] == sorted((m.score for m in result.matches), reverse=True)


def test_filters_run_inside_the_search(myntra_service: MatchService, myntra: Path) -> None:
    store = myntra_service.datadir.store
    query = open_image(myntra / "images" / "36310.jpg")
    for expression, want in (("Colour=Green", 10), ("ProductType=Kurtas", 1)):
        filters = parse_filters([expression])
        passing = store.count(filters)
        result = myntra_service.match_image(query, top_k=10, filters=filters)
        assert len(result.matches) == min(10, passing) == want
        key, value = expression.split("=")
        assert all(str(m.product[key]).lower() == value.lower() for m in result.matches)


def test_text_query_uses_the_text_space(myntra_service: MatchService) -> None:
    result = myntra_service.match_text("Mr.Men boys blazing yellow t-shirt", top_k=3)
    assert result.matches[0].id == "36310"


def test_out_of_range_top_k_and_unknown_filter_keys_are_refused(myntra_service: MatchService) -> None:
    for top_k in (0, 10_000):
        with pytest.raises(InvalidQueryError, match="top_k must be between 1 and 1000"):
            myntra_service.match_text("shirt", top_k=top_k)
    with pytest.raises(FilterError, match="unknown filter key 'Size'"):
        myntra_service.match_text("shirt", filters=parse_filters(["Size=M"]))


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
    electronics_multi_image: Path, settings: Settings
) -> None:
    datadir = DataDir.open(settings, model="offline-effnet-minilm", create=True)
    try:
        CatalogIngester(datadir).ingest_file(electronics_multi_image, ColumnOptions())
        service = MatchService(datadir)
        query = open_image(electronics_multi_image.parent / "images" / "Sony headphone- 3.jpg")
        result = service.match_image(query, top_k=3)
        assert [m.id for m in result.matches].count("1") == 1
        assert result.matches[0].id == "1" and result.matches[0].score > 0.99
        assert len(result.matches[0].product["images"]) == 4
    finally:
        datadir.close()


def test_shared_space_text_queries_fuse_text_and_image_scores(
    electronics_multi_image: Path, settings: Settings, clip_random_bundle: Bundle
) -> None:
    datadir = DataDir.open(settings, model="clip-vit-b-32-random", create=True)
    try:
        CatalogIngester(datadir).ingest_file(electronics_multi_image, ColumnOptions())
        service = MatchService(datadir)
        result = service.match_text("wireless headphones", top_k=3)
        query = datadir.embedder().embed_texts(["wireless headphones"])[0]
        weight = settings.matching.text_weight
        for found in result.matches:
            text = float(datadir.store.product_vectors([found.id], "text")[1][0] @ query)
            image = float(np.max(datadir.store.product_vectors([found.id], "image")[1] @ query))
            assert found.score == pytest.approx(weight * text + (1 - weight) * image, abs=1e-5)
        assert len(result.matches) == 3
    finally:
        datadir.close()
