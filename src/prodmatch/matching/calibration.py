"""Calibrate a catalog's match / no-match decision on its own products (see matching.decision), and on people's
verdicts on real queries (feedback) as they accumulate.

Image queries are the hard alterations (matching/hard_alterations.py: stacked blur, perspective, heavy JPEG, crops,
backgrounds), and, when the catalog verifies image queries, every query's top products are verified as a real
query's are, so the decision learns what inliers mean for this catalog. Negatives are what the top hit would have
been had the product not been in the catalog: held-out products, without a second catalog."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from prodmatch.errors import InvalidImageError
from prodmatch.matching.decision import (
    DECISION_KEY,
    Calibration,
    Features,
    Samples,
    fit,
    margin_of,
    split_scores,
    to_meta,
)
from prodmatch.matching.hard_alterations import customer_photo_hard
from prodmatch.matching.replay import replay_confirmed
from prodmatch.matching.service import MatchService
from prodmatch.matching.simulation import SPACES, build_queries, query_words
from prodmatch.matching.verification import fuse
from prodmatch.models.embedder import Embedder
from prodmatch.models.preprocess import open_image
from prodmatch.stores.records import Product, QueryLogEntry

SAMPLE = 300
# Hard photo queries cost far more than text ones (stacked alterations, then every top product verified without
# early stop): a third of the sample gives the image decision's three weights plenty of samples.
IMAGE_SAMPLE = 100
SEARCH_DEPTH = 20
MIN_SCORES = 5
_SEED = 1  # not eval's seed: the alterations calibrated on are not the ones evaluated
_BATCH = 32
_SOURCE_SIDE = 800  # a customer's phone photo is rarely larger; it also keeps altering fast


def calibrate_decisions(service: MatchService, embedder: Embedder, sample: int = SAMPLE) -> dict[str, Calibration]:
    """Fit and store one calibration per query space; spaces with too few scores are left uncalibrated."""
    products = _sample(service, sample)
    groups = service.facts.duplicate_groups()
    verdicts = feedback_samples(service, groups, embedder)
    calibrations: dict[str, Calibration] = {}
    for space in SPACES:
        if space == "image":
            positives, negatives = image_samples(service, embedder, products[:IMAGE_SAMPLE], groups)
        else:
            asked, vectors = build_queries(embedder, space, products, _SEED)
            words = query_words(space, products, _SEED)  # text queries are scored as served: hybrid, with their words
            rankings = [
                _ranking(service, space, vector, groups.get(p.id, {p.id}), text)
                for p, vector, text in zip(asked, vectors, words, strict=True)
            ]
            positives, negatives = split_scores(rankings, [p.id for p in asked], groups)
        if len(positives) >= MIN_SCORES and len(negatives) >= MIN_SCORES:
            calibrations[space] = fit(positives, negatives, verdicts.get(space))
    service.stores.store.set_meta(DECISION_KEY, to_meta(calibrations))
    service.facts.refresh()
    return calibrations


def _sample(service: MatchService, sample: int) -> list[Product]:
    store = service.stores.store
    products = store.page(0, store.count())
    if len(products) > sample:
        chosen = np.random.default_rng(_SEED).choice(len(products), size=sample, replace=False)
        products = [products[i] for i in sorted(chosen)]
    return products


def _ranking(
    service: MatchService, space: str, vector: np.ndarray, group: set[str], words: str | None = None
) -> dict[str, float]:
    """The top products, plus the exact score of the source (and its duplicates) if it ranked lower."""
    return {
        **service.query_scores(space, vector, SEARCH_DEPTH, words=words),
        **service.score_products(space, vector, group, words),
    }


def image_samples(
    service: MatchService, embedder: Embedder, products: Sequence[Product], groups: dict[str, set[str]]
) -> tuple[list[Features], list[Features]]:
    """(score, margin[, inliers]) samples of hard altered photos of PRODUCTS: positives for the source product,
    negatives for the best other. Verification runs without its early stop, so the best other product is verified
    as it would be were the source missing."""
    rankings, sources, counts = [], [], []
    for product, photo, vector in _hard_queries(embedder, [p for p in products if p.images]):
        scores = _ranking(service, "image", vector, groups.get(product.id, {product.id}))
        if service.verifies and service.features is not None:
            keypoints = service.features.of_query(photo)
            scores = service.coloured(keypoints, scores)  # as a served photo query's: colour, then verification
            counts.append(service.verify(keypoints, scores, early_stop=False))
            scores = fuse(scores, counts[-1])
        rankings.append(scores)
        sources.append(product.id)
    return split_scores(rankings, sources, groups, counts if service.verifies else None)


def _hard_queries(embedder: Embedder, products: Sequence[Product]) -> Iterator[tuple[Product, Image.Image, np.ndarray]]:
    """A hard altered copy of each product's first photo (query i uses the random stream [seed, i]), embedded.
    A photo too small to survive its alteration (strong downscaling of a tiny image) asks no query."""
    for start in range(0, len(products), _BATCH):
        chunk, photos = [], []
        for offset, product in enumerate(products[start : start + _BATCH]):
            source = open_image(product.images[0].path, draft_short_side=512)
            source.thumbnail((_SOURCE_SIDE, _SOURCE_SIDE))
            try:
                photos.append(open_image(customer_photo_hard(source, np.random.default_rng([_SEED, start + offset]))))
            except InvalidImageError:
                continue
            chunk.append(product)
        if photos:
            yield from zip(chunk, photos, embedder.embed_images(photos), strict=True)


def feedback_samples(
    service: MatchService, groups: dict[str, set[str]], embedder: Embedder | None = None
) -> dict[str, Samples]:
    """People's verdicts as (score, margin[, inliers]) samples of real queries, per query space.

    With EMBEDDER (and settings.replay_feedback), a confirmed photo whose copy is still at hand is asked again
    against today's catalog, leave-one-out (matching/replay.py): a positive and a negative from one real photo.
    Any other query counts once, by its first verdict on its top hit, or by a confirmation of another product
    (then its top hit was wrong); the score and margin are the ones the query log recorded when the query was
    answered, the inliers are counted again from the kept query photo (0 once it is deleted)."""
    store = service.stores.store
    verdicts = store.feedback()
    entries = {v.query_id: store.find_query(v.query_id) for v in verdicts}
    samples: dict[str, Samples] = {}
    replayed: set[str] = set()
    if embedder is not None and service.settings.replay_feedback:
        confirmed = {v.query_id: v.product_id for v in verdicts if v.is_match}
        pairs = [(entry, confirmed[qid]) for qid in confirmed if (entry := entries[qid]) and entry.modality == "image"]
        positives, negatives, replayed = replay_confirmed(service, embedder, pairs, groups)
        samples["image"] = Samples(positives, negatives, len(replayed))
    for verdict in verdicts:
        entry = entries[verdict.query_id] if verdict.query_id not in replayed else None
        if entry is None or not entry.top_ids:
            continue
        top = entry.top_ids[0]
        on_top = verdict.product_id in groups.get(top, {top})
        if not on_top and not verdict.is_match:
            continue  # "not this one" about a lower result says nothing about the top hit
        replayed.add(verdict.query_id)  # counted now: later verdicts on the same query are not
        image = entry.modality != "text"
        features = _logged_features(entry.top_ids, entry.top_scores, groups)
        if image and service.verifies:
            features = (*features, float(_logged_inliers(service, entry)))
        space = samples.setdefault("image" if image else "text", Samples([], [], 0))
        (space.positives if on_top and verdict.is_match else space.negatives).append(features)
        space.queries = (space.queries or 0) + 1
    return samples


def _logged_inliers(service: MatchService, entry: QueryLogEntry) -> int:
    """The top hit's inliers for a logged query's kept photo; the photo itself is left out of the product's images
    (a confirmed photo is learned as one of them)."""
    if service.features is None or entry.photo_sha is None:
        return 0
    path = service.features.files.query_photo(entry.photo_sha)
    if not path.is_file():
        return 0
    keypoints = service.features.of_query(open_image(path, draft_short_side=512))
    counts = service.verify(keypoints, {entry.top_ids[0]: 1.0}, early_stop=False, skip_sha=entry.photo_sha)
    return counts.get(entry.top_ids[0], 0)


def _logged_features(ids: list[str], scores: list[float], groups: dict[str, set[str]]) -> Features:
    ranked = dict(zip(ids, scores, strict=False))
    return (scores[0], margin_of(ranked, ids[0], groups))
