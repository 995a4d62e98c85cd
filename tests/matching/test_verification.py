"""Geometric verification: keypoints round-trip through storage, inliers tell the same product from another, the
top hits of hard altered photos are re-ranked by inliers, and the decision weighs inliers (fake model: fast)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.matching.calibration import calibrate_decisions
from prodmatch.matching.decision import decide, fit
from prodmatch.matching.hard_alterations import customer_photo_hard
from prodmatch.matching.service import MatchResult
from prodmatch.matching.verification import (
    MIN_INLIERS,
    MIN_MATCHES,
    RANSAC_ITERATIONS,
    RATIO,
    REPROJECTION_PX,
    Keypoints,
    extract,
    inliers,
    pack,
    two_nearest,
    unpack,
)
from tests.fakes import FakeEmbedders
from tests.samples import match_photo

PRODUCTS = ["36310", "10649", "10671", "25035", "2691", "30602"]  # myntra-dev's first rows


def hard_photo(myntra: Path, product_id: str, seed: int) -> bytes:
    image = Image.open(myntra / "images" / f"{product_id}.jpg").convert("RGB")
    image.thumbnail((800, 800))
    return customer_photo_hard(image, np.random.default_rng([seed, int(product_id)]))


def test_keypoints_survive_storage_and_count_inliers_of_the_same_product_only(myntra: Path) -> None:
    own = Image.open(myntra / "images" / "36310.jpg")
    stored = unpack(pack(extract(own)), "orb")
    assert 100 <= len(stored.xy) <= 300 and stored.desc.shape == (len(stored.xy), 32)
    altered = extract(Image.open(io.BytesIO(hard_photo(myntra, "36310", 3))))
    other = unpack(pack(extract(Image.open(myntra / "images" / "10649.jpg"))), "orb")
    assert inliers(altered, stored) >= 2 * MIN_INLIERS  # the print seen again, under perspective and blur
    assert inliers(altered, other) < MIN_INLIERS  # chance matches stay below the floor


def test_verification_reranks_hard_altered_photos_to_their_product(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    photos = {(pid, seed): hard_photo(myntra, pid, seed) for pid in PRODUCTS for seed in (1, 2)}
    found = {}
    for depth in (0, 20):
        settings = fake_myntra.model_copy(deep=True)
        settings.matching.verify_depth = depth
        settings.matching.colour_weight = 0.0  # verification alone (colour rides with it: tests/matching/test_colour)
        with open_catalog(settings, embedders=fake_embedders) as catalog:
            found[depth] = {key: match_photo(catalog, photo, top_k=20) for key, photo in photos.items()}
        groups = catalog.facts.duplicate_groups()

    def right(result: MatchResult, pid: str) -> bool:  # a duplicate listing of the product counts as the product
        return result.matches[0].id in groups.get(pid, {pid})

    plain = sum(right(found[0][key], key[0]) for key in photos)
    verified = sum(right(found[20][key], key[0]) for key in photos)
    rescued = [key for key in photos if right(found[20][key], key[0]) and not right(found[0][key], key[0])]
    assert verified > plain and rescued, "hard photos' products ranked below a look-alike are moved to the top"
    assert all((found[20][key].inliers or 0) >= MIN_INLIERS for key in rescued)
    # a top hit promoted by its inliers is the product: chance matches stay below the floor
    assert all(right(found[20][key], key[0]) for key in photos if (found[20][key].inliers or 0) >= MIN_INLIERS)
    assert all(result.inliers is None for result in found[0].values())  # depth 0: verification off


def test_the_decision_weighs_inliers_when_score_and_margin_cannot_tell() -> None:
    rng = np.random.default_rng(0)
    scores, margins = rng.uniform(0.6, 0.9, 400), rng.uniform(0.0, 0.1, 400)
    positives = [(s, m, n) for s, m, n in zip(scores[:200], margins[:200], rng.integers(20, 200, 200), strict=True)]
    negatives = [(s, m, n) for s, m, n in zip(scores[200:], margins[200:], rng.integers(0, 14, 200), strict=True)]
    calibration = fit(positives, negatives)
    assert calibration.inlier_weight > 0 and calibration.balanced_accuracy >= 0.95
    verified, chance = decide(calibration, 0.75, 0.05, 80), decide(calibration, 0.75, 0.05, 5)
    assert (
        verified is not None
        and verified.is_match
        and verified.evidence
        == {
            "score": 0.75,
            "margin": 0.05,
            "inliers": 80,
        }
    )
    assert chance is not None and not chance.is_match
    assert fit([(s, m) for s, m, _ in positives], [(s, m) for s, m, _ in negatives]).inlier_weight == 0.0


def test_calibration_learns_inliers_from_verified_hard_photos(
    fake_myntra: Settings, fake_embedders: FakeEmbedders
) -> None:
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        fitted = calibrate_decisions(catalog.matcher, catalog.embedder(), sample=12)
    assert fitted["image"].inlier_weight > 0 and fitted["text"].inlier_weight == 0.0


@pytest.mark.parametrize("kind", ["orb", "sift"])
def test_both_feature_kinds_verify(kind: str, myntra: Path) -> None:
    own = unpack(pack(extract(Image.open(myntra / "images" / "36310.jpg"), kind)), kind)
    altered = extract(Image.open(io.BytesIO(hard_photo(myntra, "36310", 5))), kind)
    assert inliers(altered, own) >= MIN_INLIERS


def opencv_inliers(query: Keypoints, candidate: Keypoints) -> int:
    """The reference: OpenCV's brute-force matcher, as verification ran before the FAISS binary search."""
    cv2 = pytest.importorskip("cv2")
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query.desc, candidate.desc, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < MIN_MATCHES:
        return 0
    source = query.xy[[m.queryIdx for m in good]]
    target = candidate.xy[[m.trainIdx for m in good]]
    _, mask = cv2.findHomography(
        source, target, cv2.RANSAC, REPROJECTION_PX, maxIters=RANSAC_ITERATIONS, confidence=0.99
    )
    return int(mask.sum()) if mask is not None else 0


def test_orb_matching_gives_what_opencvs_brute_force_matcher_gives(myntra: Path, shared_data: Path) -> None:
    """Real photos (phone photos against studio shots, altered catalog photos): the same inlier counts, pair by pair."""
    queries = sorted((shared_data / "grocery-dev" / "queries").glob("*.jpg"))[::9][:12]
    studio = sorted((shared_data / "grocery-dev" / "catalog").glob("*.jpg"))[:6]
    photos = [Image.open(path).convert("RGB") for path in [*queries, *studio]]
    photos += [Image.open(io.BytesIO(hard_photo(myntra, pid, 3))) for pid in PRODUCTS[:3]]
    photos += [Image.open(myntra / "images" / f"{pid}.jpg").convert("RGB") for pid in PRODUCTS[:3]]
    keypoints = [extract(photo) for photo in photos]
    counts = [(inliers(a, b), opencv_inliers(a, b)) for a in keypoints[:15] for b in keypoints[12:]]
    assert [ours for ours, _ in counts] == [reference for _, reference in counts]
    assert sum(ours >= MIN_INLIERS for ours, _ in counts) >= 3  # not only zeros: same photos and products matched


def test_a_candidate_with_one_descriptor_has_no_second_neighbour() -> None:
    rng = np.random.default_rng(0)
    query = Keypoints(rng.random((5, 2), np.float32), rng.integers(0, 256, (5, 32), np.uint8), "orb")
    lone = Keypoints(np.zeros((1, 2), np.float32), query.desc[:1].copy(), "orb")
    distances, nearest = two_nearest(query, lone)
    assert nearest[:, 0].tolist() == [0] * 5 and nearest[:, 1].tolist() == [-1] * 5 and distances[0, 0] == 0
