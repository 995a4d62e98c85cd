"""Confirmed customer photos asked again, for the decision's calibration: real photos against today's catalog.

A confirmation says "this photo is product P". The score the query log recorded when the photo was answered is from
the catalog of that moment; once photos are learned, a new customer photo finds the product through an earlier
customer photo and scores far higher than it did then, so a calibration on the logged scores puts the threshold
where real photos no longer fall. Asked again, leave-one-out (P without the photo it learned from this very
confirmation), each confirmed photo gives a positive, P's score and margin, and a negative, the best other product's:
what the top hit would have been had P not been in the catalog, as the simulated queries give, but from a real photo
and today's catalog. Both are scored as a served query is: colour, then geometric verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prodmatch.errors import InvalidImageError
from prodmatch.matching.decision import Features, split_scores
from prodmatch.matching.service import MatchService
from prodmatch.matching.verification import fuse
from prodmatch.models.embedder import Embedder
from prodmatch.models.preprocess import open_image
from prodmatch.stores.records import QueryLogEntry

DEPTH = 20  # products searched per replayed photo (as the simulated calibration queries)
VERIFIED = 10  # of them, verified (without early stop): the best other product is among the first few
LATEST = 300  # confirmations replayed at most, the latest: each one costs an embedding and a verification
_SELF = 0.95  # the product's own row this close to the photo is the photo itself (learned from the confirmation)


def replay_confirmed(
    service: MatchService,
    embedder: Embedder,
    confirmed: Sequence[tuple[QueryLogEntry, str]],
    groups: dict[str, set[str]],
) -> tuple[list[Features], list[Features], set[str]]:
    """(positives, negatives, query ids replayed) of CONFIRMED (logged photo query, confirmed product) pairs whose
    photo is still at hand; the others are left to the logged scores."""
    positives: list[Features] = []
    negatives: list[Features] = []
    replayed: set[str] = set()
    for entry, product_id in list(confirmed)[-LATEST:]:
        path = _photo_path(service, entry.photo_sha)
        if path is None:
            continue
        try:
            photo = open_image(path, draft_short_side=512)
        except InvalidImageError:
            continue
        vector = embedder.embed_images([photo])[0]
        accepted = groups.get(product_id, {product_id})
        scores = _leave_one_out(service, vector, accepted, entry.photo_sha)
        counts: list[dict[str, int]] | None = None
        if service.verifies and service.features is not None:
            keypoints = service.features.of_query(photo)
            scores = service.coloured(keypoints, scores, skip_sha=entry.photo_sha)
            ranked = sorted(scores, key=lambda pid: -scores[pid])[:VERIFIED]
            checked = [*ranked, *(pid for pid in accepted if pid in scores and pid not in ranked)]
            found = service.features.verify(keypoints, checked, service.facts.products, False, entry.photo_sha)
            scores, counts = fuse(scores, found), [found]
        own, others = split_scores([scores], [product_id], groups, counts)
        positives += own
        negatives += others
        replayed.add(entry.query_id)
    return positives, negatives, replayed


def _photo_path(service: MatchService, sha: str | None) -> Path | None:
    """The learned copy of a confirmed photo, else the kept query photo; None when neither is left."""
    if sha is None or service.features is None:
        return None
    files = service.features.files
    return next((path for path in (files.learned_photo(sha), files.query_photo(sha)) if path.is_file()), None)


def _leave_one_out(service: MatchService, vector: np.ndarray, accepted: set[str], sha: str | None) -> dict[str, float]:
    """The top products' scores for VECTOR, each product as its best image, except that a product of ACCEPTED that
    learned the photo SHA scores without its closest image (the photo itself)."""
    candidates = set(service.image_query_scores(vector, DEPTH)) | accepted
    learned = {
        pid
        for pid, product in service.facts.products(sorted(accepted)).items()
        if any(ref.sha256 == sha for ref in product.images)
    }
    scores: dict[str, float] = {}
    for pid, rows in service.facts.product_vectors(sorted(candidates), "image").items():
        cosines = np.sort(rows @ vector)[::-1]
        if pid in learned and cosines[0] >= _SELF:
            cosines = cosines[1:]
        if len(cosines):
            scores[pid] = float(cosines[0])
    return scores
