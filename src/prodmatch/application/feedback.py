"""Feedback: a person says whether a product is (or is not) the one in an answered query's photo or text.

Every verdict is kept beside the query log. A confirmed query photo becomes one more photo of that product (when
`matching.learn_from_feedback` is on), so the next customer photo like it finds the product; the decision is
recalibrated from the verdicts as they accumulate (matching.calibration), since they are real queries with real
scores, not altered studio photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prodmatch.application.ingesting import calibrate
from prodmatch.composition import Catalog
from prodmatch.errors import NotFoundError, UnknownProductError
from prodmatch.stores.records import Feedback

RECALIBRATE_EVERY = 10  # verdicts between automatic recalibrations (each one re-runs the calibration queries)


@dataclass
class FeedbackOutcome:
    query_id: str
    product_id: str
    is_match: bool
    learned_photo: bool  # the query photo is now one of the product's photos
    verdicts: int  # verdicts the catalog holds, this one included
    recalibrated: bool


def record_feedback(catalog: Catalog, query_id: str, product_id: str, is_match: bool) -> FeedbackOutcome:
    """Keep the verdict; learn the photo of a confirmed match; recalibrate every RECALIBRATE_EVERY verdicts.
    NotFoundError for an unknown query id, UnknownProductError for a product that does not exist."""
    entry = catalog.store.find_query(query_id)
    if entry is None:
        raise NotFoundError(f"no answered query with id {query_id!r} (ids come from match responses)")
    product = catalog.store.get([product_id]).get(product_id)
    if product is None:
        raise UnknownProductError(f"no product with id {product_id!r}")
    catalog.store.add_feedback(Feedback(query_id, product_id, is_match, datetime.now(UTC)))
    learned = is_match and entry.photo_sha is not None and _learn(catalog, product_id, entry.photo_sha)
    verdicts = len(catalog.store.feedback())
    recalibrate = verdicts % RECALIBRATE_EVERY == 0
    if recalibrate:
        calibrate(catalog)
    return FeedbackOutcome(query_id, product_id, is_match, learned, verdicts, recalibrate)


def _learn(catalog: Catalog, product_id: str, photo_sha: str) -> bool:
    if not catalog.settings.matching.learn_from_feedback:
        return False
    path = catalog.files.learn(photo_sha)
    if path is None:  # the kept query photo has expired
        return False
    with catalog.lock:
        product = catalog.store.get([product_id]).get(product_id)
        if product is None:  # deleted since the verdict was checked
            return False
        added = catalog.ingester(batch_size=1).add_learned_photo(product, path)
        catalog.facts.refresh()
    return added
