"""Calibrate a catalog's match / no-match decision on its own products (see matching.decision), and on people's
verdicts on real queries (feedback) as they accumulate."""

from __future__ import annotations

import numpy as np

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
from prodmatch.matching.service import MatchService
from prodmatch.matching.simulation import SPACES, build_queries, query_words
from prodmatch.models.embedder import Embedder
from prodmatch.stores.protocols import MetadataStore
from prodmatch.stores.records import Product

SAMPLE = 300
SEARCH_DEPTH = 20
MIN_SCORES = 5
_SEED = 1  # not eval's seed: the alterations calibrated on are not the ones evaluated


def calibrate_decisions(service: MatchService, embedder: Embedder, sample: int = SAMPLE) -> dict[str, Calibration]:
    """Fit and store one calibration per query space; spaces with too few scores are left uncalibrated."""
    products = _sample(service, sample)
    groups = service.facts.duplicate_groups()
    verdicts = feedback_samples(service.stores.store, groups)
    calibrations: dict[str, Calibration] = {}
    for space in SPACES:
        asked, vectors = build_queries(embedder, space, products, _SEED)
        words = query_words(space, products, _SEED)  # text queries are scored as served: hybrid, with their words
        rankings = [
            # the top products, plus the exact score of the source (and its duplicates) if it ranked lower
            {
                **service.query_scores(space, vector, SEARCH_DEPTH, words=text),
                **service.score_products(space, vector, groups.get(p.id, {p.id}), text),
            }
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


def feedback_samples(store: MetadataStore, groups: dict[str, set[str]]) -> dict[str, Samples]:
    """People's verdicts as (score, margin) samples of real queries, per query space. A query counts once, by its
    first verdict on its top hit, or by a confirmation of another product (then its top hit was wrong); the score
    and margin are the ones the query log recorded when the query was answered."""
    samples: dict[str, Samples] = {}
    seen: set[str] = set()
    for verdict in store.feedback():
        entry = store.find_query(verdict.query_id) if verdict.query_id not in seen else None
        if entry is None or not entry.top_ids:
            continue
        top = entry.top_ids[0]
        on_top = verdict.product_id in groups.get(top, {top})
        if not on_top and not verdict.is_match:
            continue  # "not this one" about a lower result says nothing about the top hit
        seen.add(verdict.query_id)
        features = _logged_features(entry.top_ids, entry.top_scores, groups)
        space = samples.setdefault("text" if entry.modality == "text" else "image", Samples([], []))
        (space.positives if on_top and verdict.is_match else space.negatives).append(features)
    return samples


def _logged_features(ids: list[str], scores: list[float], groups: dict[str, set[str]]) -> Features:
    ranked = dict(zip(ids, scores, strict=False))
    return (scores[0], margin_of(ranked, ids[0], groups))
