"""The match use case's per-stage timings: measured for every query, shown only when asked, results unchanged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prodmatch.application.querying import STAGES, DirectQueryLog, Matcher, MatchQuery, Timings
from prodmatch.composition import Catalog
from prodmatch.config import Settings
from tests.fakes import FakeEmbedders


@pytest.fixture
def catalog(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> Iterator[Catalog]:
    opened = Catalog.open(fake_myntra, embedders=fake_embedders)
    try:
        yield opened
    finally:
        opened.close()


def matcher(catalog: Catalog) -> Matcher:
    return Matcher(catalog, DirectQueryLog(catalog.store), 2000)


def test_timings_add_up_per_stage() -> None:
    timings = Timings()
    with timings.stage("model"):
        time.sleep(0.01)
    timings.add("model", 5.0)
    assert 15.0 <= timings.ms["model"] < 100.0 and list(timings.ms) == ["model"]


def test_an_image_query_is_timed_in_every_stage_and_answers_as_before(catalog: Catalog, myntra: Path) -> None:
    photo = (myntra / "images" / "10054.jpg").read_bytes()
    answer = matcher(catalog).match(MatchQuery(image=photo, top_k=5, profile=True))  # in process: no cache stage
    assert list(answer.timings) == list(STAGES[1:]) and all(ms >= 0 for ms in answer.timings.values())
    before_decide = sum(answer.timings[stage] for stage in ("decode", "preprocess", "model", "search"))
    assert before_decide <= answer.result.took_ms + 1.0  # took_ms runs from the start to the end of the search
    assert answer.as_dict()["timings"] == answer.timings
    # the same query the way it ran before stages were timed: embed_images on the decoded photo, then search
    decoded = catalog.decode(photo)
    vector = catalog.embedder().embed_images([decoded])[0]
    before = catalog.matcher.match_vectors(vector, None, 5, keypoints=catalog.features.of_query(decoded))
    assert [m.id for m in answer.result.matches] == [m.id for m in before.matches]
    np.testing.assert_allclose(
        [m.score for m in answer.result.matches], [m.score for m in before.matches], rtol=0, atol=1e-6
    )


def test_a_text_query_has_no_decode_stage_and_hides_timings_unless_asked(catalog: Catalog) -> None:
    answer = matcher(catalog).match(MatchQuery(text="blue denim jeans", top_k=3))
    assert list(answer.timings) == ["model", "search", "decide", "log"]
    assert "timings" not in answer.as_dict()
