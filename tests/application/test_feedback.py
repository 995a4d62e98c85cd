"""Feedback on real phone photos (grocery-dev) with the real offline model: a confirmed photo is learned by its
product and the next photo like it finds the product; rejections teach nothing; learned photos follow the product."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prodmatch.application.feedback import record_feedback
from prodmatch.application.ingesting import calibrate
from prodmatch.application.products import delete_product
from prodmatch.application.querying import DirectQueryLog, MatchAnswer, Matcher, MatchQuery
from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.composition import Catalog
from prodmatch.config import Settings
from prodmatch.errors import NotFoundError, UnknownProductError
from prodmatch.matching.alterations import customer_photo
from prodmatch.models.bundle import Bundle
from prodmatch.models.preprocess import open_image

PRODUCTS = 10
pytestmark = pytest.mark.slow  # real model, real photos


@pytest.fixture(scope="module")
def grocery(shared_data: Path) -> Path:
    return shared_data / "grocery-dev"


def phone_photos(grocery: Path) -> dict[str, list[Path]]:
    photos: dict[str, list[Path]] = {}
    with (grocery / "queries.csv").open(newline="") as rows:
        for row in csv.DictReader(rows):
            photos.setdefault(row["id"], []).append(grocery / row["image"])
    return photos


@pytest.fixture
def catalog(settings: Settings, grocery: Path, offline_bundle: Bundle, tmp_path: Path) -> Iterator[Catalog]:
    """The first PRODUCTS grocery products (one studio photo each)."""
    lines = (grocery / "catalog.csv").read_text().splitlines(keepends=True)
    source = tmp_path / "catalog.csv"
    source.write_text("".join(lines[: PRODUCTS + 1]))
    opened = Catalog.open(settings, model="offline-effnet-minilm", create=True)
    opened.ingester().ingest_file(source, ColumnOptions(), grocery)
    opened.facts.refresh()
    yield opened
    opened.close()


def ask(catalog: Catalog, photo: bytes) -> MatchAnswer:
    return Matcher(catalog, DirectQueryLog(catalog.store), 2000).match(MatchQuery(image=photo, top_k=5))


def missed_photo(catalog: Catalog, grocery: Path) -> tuple[str, Path, MatchAnswer]:
    """A phone photo whose product is in the catalog but not the top hit (real photos miss often)."""
    ids = {p.id for p in catalog.store.page(0, PRODUCTS)}
    for product_id, photos in phone_photos(grocery).items():
        for photo in photos if product_id in ids else []:
            answer = ask(catalog, photo.read_bytes())
            if answer.result.matches[0].id != product_id:
                return product_id, photo, answer
    raise AssertionError("every phone photo was found first: the test needs a miss")


def test_a_confirmed_photo_is_learned_and_the_next_photo_like_it_finds_the_product(
    catalog: Catalog, grocery: Path
) -> None:
    product_id, photo, answer = missed_photo(catalog, grocery)
    outcome = record_feedback(catalog, answer.query_id, product_id, True)
    assert outcome.learned_photo and outcome.verdicts == 1
    images = catalog.store.get([product_id])[product_id].images
    assert len(images) == 2 and catalog.files.is_learned(images[1].path)

    source = open_image(photo)
    source.thumbnail((800, 800))
    similar = customer_photo(source, np.random.default_rng(3))  # the same shelf shot, re-framed and re-encoded
    assert ask(catalog, similar).result.matches[0].id == product_id


def test_a_rejection_is_kept_and_teaches_the_product_nothing(catalog: Catalog, grocery: Path) -> None:
    _product_id, _photo, answer = missed_photo(catalog, grocery)
    wrong = answer.result.matches[0].id
    before = catalog.store.get([wrong])[wrong].images
    outcome = record_feedback(catalog, answer.query_id, wrong, False)
    assert not outcome.learned_photo and catalog.store.get([wrong])[wrong].images == before
    assert [(f.query_id, f.product_id, f.is_match) for f in catalog.store.feedback()] == [
        (answer.query_id, wrong, False)
    ]


def test_unknown_queries_and_products_are_refused(catalog: Catalog, grocery: Path) -> None:
    _product_id, _photo, answer = missed_photo(catalog, grocery)
    with pytest.raises(NotFoundError):
        record_feedback(catalog, "no-such-query", answer.result.matches[0].id, True)
    with pytest.raises(UnknownProductError):
        record_feedback(catalog, answer.query_id, "no-such-product", True)
    assert catalog.store.feedback() == []


def test_learned_photos_survive_a_reingest_and_leave_with_their_product(
    catalog: Catalog, grocery: Path, tmp_path: Path
) -> None:
    product_id, _photo, answer = missed_photo(catalog, grocery)
    record_feedback(catalog, answer.query_id, product_id, True)
    learned = catalog.store.get([product_id])[product_id].images[1]
    report = catalog.ingester().ingest_file(tmp_path / "catalog.csv", ColumnOptions(), grocery)
    assert report.unchanged == PRODUCTS and len(catalog.store.get([product_id])[product_id].images) == 2

    delete_product(catalog, product_id)
    assert not Path(learned.path).exists() and catalog.store.feedback() == []
    assert product_id not in catalog.store.get([product_id])


def test_calibration_rests_on_the_verdicts(catalog: Catalog, grocery: Path) -> None:
    product_id, _photo, answer = missed_photo(catalog, grocery)
    record_feedback(catalog, answer.query_id, answer.result.matches[0].id, False)  # the top hit is not it
    record_feedback(catalog, answer.query_id, product_id, True)  # the same query: counted once
    calibrations = calibrate(catalog)
    assert calibrations["image"].real_verdicts == 1
    decision = ask(catalog, (grocery / "catalog" / "0.jpg").read_bytes()).decision
    assert decision is not None and decision.real_verdicts == 1
