"""Region search: fixed crops of the query photo, the best region wins and says where the product is."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from prodmatch.api.schemas import MatchResponse
from prodmatch.application.querying import Matcher, MatchQuery
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.matching.regions import WHOLE, best_regions, crops, proposals
from tests.fakes import FakeEmbedders
from tests.samples import KeptLog


def test_proposals_are_inside_the_photo_and_square_in_pixels() -> None:
    boxes = proposals(640, 480)
    assert boxes[0] == WHOLE and len(boxes) == 7
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    sizes = [crop.size for crop in crops(Image.new("RGB", (640, 480)), boxes[1:])]
    assert all(abs(width - height) <= 1 for width, height in sizes)


def test_a_product_scores_as_its_best_region() -> None:
    scores, where = best_regions([{"a": 0.5, "b": 0.7}, {"a": 0.9}, {"b": 0.6}])
    assert scores == {"a": 0.9, "b": 0.7} and where == {"a": 1, "b": 0}


def test_a_product_in_a_corner_of_a_cluttered_photo_is_found_and_boxed(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    catalog_photo = Image.open(myntra / "images" / "36310.jpg").convert("RGB")
    side = min(catalog_photo.size)  # the fake model sees the centre square, as it saw the catalog photo
    left, top = (catalog_photo.width - side) // 2, (catalog_photo.height - side) // 2
    product = catalog_photo.crop((left, top, left + side, top + side)).resize((470, 470))
    photo = Image.new("RGB", (1000, 800), (90, 110, 90))  # a table, the product in its top-left corner
    photo.paste(product, (5, 5))
    data = io.BytesIO()
    photo.save(data, format="JPEG", quality=90)
    answers = {}
    for regions in (False, True):
        settings = fake_myntra.model_copy(deep=True)
        settings.matching.regions = regions
        with open_catalog(settings, embedders=fake_embedders) as catalog:
            answers[regions] = Matcher(catalog, KeptLog(), 2000).match(MatchQuery(image=data.getvalue(), top_k=3))
    assert answers[True].result.matches[0].id == "36310"
    assert answers[False].result.box is None
    box = MatchResponse.model_validate(answers[True].as_dict()).box
    assert box is not None and box[0] == 0 and box[1] == 0 and box[2] < 0.6  # the top-left grid square
    assert fake_embedders.last.calls[0] == ("image", 7)  # every region in one model call
