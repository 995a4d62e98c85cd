"""Match / no-match decisions: the logistic fit, and calibration on a real catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prodmatch.config import Settings
from prodmatch.eval.calibrate import calibrate_decisions
from prodmatch.matching.decision import DECISION_KEY, decide, fit, from_meta, margin_of, split_scores
from prodmatch.matching.service import MatchService
from prodmatch.models.bundle import Bundle
from tests.samples import ingest_myntra


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


@pytest.fixture(scope="module")
def calibrated(
    base_settings: Settings, myntra: Path, tmp_path_factory: pytest.TempPathFactory, offline_bundle: Bundle
) -> Iterator[MatchService]:
    settings = base_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("calibrated")})
    datadir = ingest_myntra(settings, myntra)
    service = MatchService(datadir)
    calibrate_decisions(service, sample=120)
    yield service
    datadir.close()


@pytest.mark.slow
def test_calibration_is_stored_and_decides_real_queries(calibrated: MatchService, myntra: Path) -> None:
    saved = from_meta(calibrated.datadir.store.get_meta(DECISION_KEY))
    assert set(saved) == {"image", "text"}
    assert saved["image"].positives == 120 and saved["image"].balanced_accuracy > 0.8
    own_photo = calibrated.match_image(calibrated.decode(myntra / "images" / "36310.jpg"), top_k=1)
    decision = calibrated.decision("image", own_photo)
    assert decision is not None and decision.is_match and decision.confidence > 0.9
    assert set(own_photo.as_dict()) == {"matches", "model", "took_ms"}  # the decision is not part of the CLI JSON
