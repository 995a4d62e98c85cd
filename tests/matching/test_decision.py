"""Match / no-match decisions: the logistic fit, calibration's bookkeeping (fake model) and calibration on a real
catalog with the real model (slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import Settings
from prodmatch.matching.calibration import IMAGE_SAMPLE, calibrate_decisions
from prodmatch.matching.decision import DECISION_KEY, decide, fit, from_meta, margin_of, split_scores
from prodmatch.models.bundle import Bundle
from tests.fakes import KNOWN_CALIBRATIONS, FakeEmbedders
from tests.samples import ingest_myntra, match_photo, match_words


def test_fit_separates_matches_from_look_alikes_using_the_margin() -> None:
    rng = np.random.default_rng(0)
    # same scores for both classes; only the margin tells them apart
    positives = [(s, m) for s, m in zip(rng.uniform(0.7, 0.9, 200), rng.uniform(0.08, 0.2, 200), strict=True)]
    negatives = [(s, m) for s, m in zip(rng.uniform(0.7, 0.9, 200), rng.uniform(0.0, 0.05, 200), strict=True)]
    calibration = fit(positives, negatives)
    assert calibration.balanced_accuracy >= 0.95 and calibration.margin_weight > 0
    match, look_alike = decide(calibration, 0.8, 0.15), decide(calibration, 0.8, 0.01)
    assert match is not None and match.is_match and match.confidence > 0.5
    assert look_alike is not None and not look_alike.is_match and look_alike.confidence < 0.5
    assert match.threshold < 0.8 < look_alike.threshold  # the score needed depends on the margin


def test_no_calibration_or_no_hit_means_no_decision() -> None:
    assert decide(None, 0.9, 0.1) is None
    assert decide(fit([(0.9, 0.2)] * 5, [(0.5, 0.0)] * 5), None, 0.0) is None


def test_margin_and_split_ignore_duplicate_listings() -> None:
    groups = {"a": {"a", "a2"}, "a2": {"a", "a2"}}
    scores = {"a": 0.95, "a2": 0.949, "b": 0.80, "c": 0.70}
    assert margin_of(scores, "a", groups) == pytest.approx(0.15)
    positives, negatives = split_scores([scores], ["a"], groups)
    assert positives == [(0.95, pytest.approx(0.15))] and negatives == [(0.80, pytest.approx(0.10))]


def test_calibration_samples_each_space_stores_its_fit_and_decides_with_it_at_once(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        assert from_meta(catalog.store.get_meta(DECISION_KEY)) == KNOWN_CALIBRATIONS  # the template's, before
        fitted = calibrate_decisions(catalog.matcher, catalog.embedder(), sample=12)
        assert set(fitted) == {"image", "text"}
        assert [(c.positives, c.negatives) for c in fitted.values()] == [(12, 12), (12, 12)]
        assert fake_embedders.last.count("image") == 12 and fake_embedders.last.count("text") == 12
        assert from_meta(catalog.store.get_meta(DECISION_KEY)) == fitted
        for space, result in (
            ("image", match_photo(catalog, myntra / "images" / "36310.jpg")),
            ("text", match_words(catalog, "Doodle Boys Grand Prix White Shirt")),
        ):
            top = result.matches[0].score
            assert catalog.matcher.decide(space, result) == decide(fitted[space], top, result.margin, result.inliers)


@pytest.fixture(scope="module")
def calibrated(
    base_settings: Settings, myntra: Path, tmp_path_factory: pytest.TempPathFactory, offline_bundle: Bundle
) -> Iterator[Catalog]:
    settings = base_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("calibrated")})
    catalog = ingest_myntra(settings, myntra)
    calibrate_decisions(catalog.matcher, catalog.embedder(), sample=120)
    yield catalog
    catalog.close()


@pytest.mark.slow
def test_calibration_is_stored_and_decides_real_queries(calibrated: Catalog, myntra: Path) -> None:
    saved = from_meta(calibrated.store.get_meta(DECISION_KEY))
    assert set(saved) == {"image", "text"}
    # hard photo queries for the first IMAGE_SAMPLE of the 120 sampled products, one positive each
    assert saved["image"].positives == min(120, IMAGE_SAMPLE) and saved["image"].balanced_accuracy > 0.8
    own_photo = match_photo(calibrated, myntra / "images" / "36310.jpg", top_k=1)
    decision = calibrated.matcher.decide("image", own_photo)
    assert decision is not None and decision.is_match and decision.confidence > 0.9
