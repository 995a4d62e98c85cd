"""Colour re-ranking: the histogram tells colours apart and ignores a studio's white, stored catalog histograms
re-rank a photo query's top products by colour, a learned customer photo's colour weighs more than a studio photo's,
and weights 0 turn it off (fake model: fast)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from prodmatch.application.feedback import record_feedback
from prodmatch.application.querying import DirectQueryLog, Matcher, MatchQuery
from prodmatch.catalog.schema import ColumnOptions
from prodmatch.composition import Catalog
from prodmatch.config import Settings
from prodmatch.matching.colour import BINS, histogram, pack, unpack
from prodmatch.models.bundle import Bundle
from tests.fakes import FakeEmbedders

RED, GREEN, YELLOW = (200, 30, 30), (40, 170, 40), (230, 210, 40)


def fruit(colour: tuple[int, int, int], background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """A disc of COLOUR on BACKGROUND, with a little texture so it is not one flat colour."""
    image = Image.new("RGB", (200, 200), background)
    ImageDraw.Draw(image).ellipse((40, 40, 160, 160), fill=colour)
    noise = np.random.default_rng(0).integers(-12, 12, (200, 200, 3))
    return Image.fromarray(np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8))


def test_the_histogram_tells_colours_apart_and_leaves_the_studio_white_out() -> None:
    red, green = histogram(fruit(RED)), histogram(fruit(GREEN))  # white kept
    assert red.shape == (BINS,) and abs(float(np.linalg.norm(red)) - 1) < 1e-5
    assert float(red @ green) < 0.75  # what they share is the white (64% of the pixels)
    studio_red, studio_green = histogram(fruit(RED), drop_white=True), histogram(fruit(GREEN), drop_white=True)
    shelf_red = histogram(fruit(RED, background=(90, 60, 40)))  # the same fruit in a brown crate
    assert float(studio_red @ studio_green) < 0.1  # without the white, nothing is shared
    assert float(shelf_red @ studio_red) > float(shelf_red @ studio_green) + 0.5
    assert np.allclose(unpack(pack(studio_red)), studio_red, atol=1e-3)


@pytest.fixture
def fruit_catalog(
    settings: Settings, fake_embedders: FakeEmbedders, fake_bundle: Bundle, tmp_path: Path
) -> Iterator[Catalog]:
    """Three products, one studio photo each: a red, a green and a yellow fruit."""
    rows = [("red", RED), ("green", GREEN), ("yellow", YELLOW)]
    for name, colour in rows:
        fruit(colour).save(tmp_path / f"{name}.png")
    with (tmp_path / "catalog.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "name", "image"])
        writer.writerows([(name, f"{name} fruit", f"{name}.png") for name, _ in rows])
    opened = Catalog.open(settings, model=str(fake_bundle.folder), create=True, embedders=fake_embedders)
    opened.ingester().ingest_file(tmp_path / "catalog.csv", ColumnOptions(), tmp_path)
    opened.facts.refresh()
    yield opened
    opened.close()


def test_stored_histograms_rerank_a_photo_querys_products_by_colour(fruit_catalog: Catalog) -> None:
    service, features = fruit_catalog.matcher, fruit_catalog.features
    assert features.colour_weights == (0.05, 0.2)  # on by default: catalog photos, learned photos
    query = features.of_query(fruit(RED, background=(90, 60, 40)))
    assert query.colour is not None
    tied = {"red": 0.5, "green": 0.52, "yellow": 0.51}  # the global vector ranks a look-alike first
    coloured = service.coloured(query, tied)
    assert max(coloured, key=coloured.__getitem__) == "red"
    assert 0.02 < coloured["red"] - tied["red"] <= 0.05 + 1e-6  # at most colour_weight x a similarity of 1
    assert coloured["green"] - tied["green"] < 0.01 and coloured["yellow"] - tied["yellow"] < 0.01
    for ref in (ref for p in fruit_catalog.store.page(0, 3) for ref in p.images):  # computed at ingest
        assert fruit_catalog.files.load_features("colour", ref.sha256) is not None


def test_a_learned_customer_photos_colour_weighs_more(fruit_catalog: Catalog) -> None:
    shelf = io.BytesIO()
    fruit(GREEN, background=(90, 60, 40)).save(shelf, "JPEG")
    matcher = Matcher(fruit_catalog, DirectQueryLog(fruit_catalog.store), 2000)
    answer = matcher.match(MatchQuery(image=shelf.getvalue(), top_k=3))
    before = fruit_catalog.matcher.coloured(fruit_catalog.features.of_query(fruit(GREEN, (90, 60, 40))), {"green": 0})
    assert record_feedback(fruit_catalog, answer.query_id, "green", True).learned_photo
    after = fruit_catalog.matcher.coloured(fruit_catalog.features.of_query(fruit(GREEN, (90, 60, 40))), {"green": 0})
    assert before["green"] <= 0.05 and 0.15 < after["green"] <= 0.2 + 1e-6  # the shelf photo, at learned weight


def test_colour_weight_zero_turns_colour_off(
    settings: Settings, fake_embedders: FakeEmbedders, fake_bundle: Bundle
) -> None:
    settings.matching.colour_weight = settings.matching.learned_colour_weight = 0.0
    catalog = Catalog.open(settings, model=str(fake_bundle.folder), create=True, embedders=fake_embedders)
    try:
        query = catalog.features.of_query(fruit(RED))
        assert query.colour is None
        assert catalog.matcher.coloured(query, {"a": 0.3}) == {"a": 0.3}
    finally:
        catalog.close()
