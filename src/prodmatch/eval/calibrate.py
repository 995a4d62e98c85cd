"""Calibrate a data dir's match / no-match thresholds on its own catalog (see matching.decision)."""

from __future__ import annotations

import numpy as np

from prodmatch.eval.quality import build_queries, duplicate_map
from prodmatch.matching.decision import DECISION_KEY, Calibration, fit, split_scores, to_meta
from prodmatch.matching.service import MatchService

SAMPLE = 300
SEARCH_DEPTH = 20
MIN_SCORES = 5
KINDS = {"images": "image", "text": "text"}
_SEED = 1  # not eval's seed: the alterations calibrated on are not the ones evaluated


def calibrate_decisions(service: MatchService, sample: int = SAMPLE) -> dict[str, Calibration]:
    """Fit and store one calibration per query kind; kinds with too few scores are left uncalibrated."""
    store = service.datadir.store
    products = store.page(0, store.count())
    if len(products) > sample:
        chosen = np.random.default_rng(_SEED).choice(len(products), size=sample, replace=False)
        products = [products[i] for i in sorted(chosen)]
    groups = duplicate_map(store.duplicate_groups())
    calibrations: dict[str, Calibration] = {}
    for query_kind, kind in KINDS.items():
        asked, vectors = build_queries(service, query_kind, products, _SEED)
        scorer = service.image_query_scores if kind == "image" else service.text_query_scores
        rankings = [
            # the top products, plus the exact score of the source (and its duplicates) if it ranked lower
            {
                **scorer(vector, SEARCH_DEPTH),
                **service.score_products(kind, vector, groups.get(product.id, {product.id})),
            }
            for product, vector in zip(asked, vectors, strict=True)
        ]
        positives, negatives = split_scores(rankings, [p.id for p in asked], groups)
        if len(positives) >= MIN_SCORES and len(negatives) >= MIN_SCORES:
            calibrations[kind] = fit(positives, negatives)
    store.set_meta(DECISION_KEY, to_meta(calibrations))
    return calibrations
