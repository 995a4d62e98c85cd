"""The matching service: the one implementation of "which products match these embedded queries".

Scores are cosine similarities (unit vectors, inner product), higher is better. A product with several
images scores as its best image. Text queries search product text; when the model's image and text
spaces are shared (CLIP) they also search product images, and each candidate's two scores are fused as

    score = w * cos(query, product text) + (1 - w) * cos(query, best product image)

with w = settings.matching.text_weight (0.5 by default). Both terms are computed exactly for every
candidate found by either search, so the fused score never mixes an exact value with a missing one;
a product with no image (or no text) keeps the one score it has. Queries arrive embedded: turning photos
and texts into vectors is the application layer's job (in process, micro-batched, or on Triton).

A text query given with its words is hybrid (settings.matching.hybrid_text): the products found by the dense
search and by the lexical index (matching.lexical: BM25 over text and attribute values) are each scored

    score = (wd * dense + wl * lexical + wa * attributes) / (wd + wl + wa)

dense = the score above (cosine), lexical = BM25 relative to its ceiling for the query, in [0, 1), attributes =
the share of catalog attribute values named in the query ("navy blue", "tshirts") that the product holds. The
attribute term and its weight count only when the query names some value, so both kinds of query score in [0, 1].
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prodmatch.config import MatchingSettings
from prodmatch.errors import InvalidQueryError
from prodmatch.matching.colour import fuse_colour
from prodmatch.matching.decision import Decision, decide, margin_of
from prodmatch.matching.facts import CatalogFacts
from prodmatch.matching.lexical import LexicalIndex, LexicalQuery
from prodmatch.matching.regions import Box, best_regions
from prodmatch.matching.verification import Keypoints, LocalFeatures, fuse
from prodmatch.models.record import ModelRecord
from prodmatch.stores.catalog_stores import CatalogStores
from prodmatch.stores.filters import Filter, check_keys
from prodmatch.stores.protocols import SearchScope

MAX_TOP_K = 1000
DECISION_DEPTH = 10  # products searched at least, so the decision sees the runner-up


@dataclass
class Match:
    id: str
    score: float
    product: dict[str, Any]


@dataclass
class MatchResult:
    matches: list[Match]
    model: str
    took_ms: float
    margin: float = field(default=1.0, repr=False)  # top score minus the next distinct product's: for decisions
    inliers: int | None = field(default=None, repr=False)  # the top hit's, when the query was verified
    box: list[float] | None = field(default=None, repr=False)  # the query photo's region that matched (0..1)

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON shape: matches, model, took_ms."""
        return {"matches": [asdict(m) for m in self.matches], "model": self.model, "took_ms": self.took_ms}


class MatchService:
    """Ranks the products of one catalog for embedded image and text queries, and decides match / no match."""

    def __init__(
        self,
        stores: CatalogStores,
        model: ModelRecord,
        settings: MatchingSettings,
        facts: CatalogFacts,
        features: LocalFeatures | None = None,
    ) -> None:
        self.stores = stores
        self.model = model
        self.settings = settings
        self.facts = facts
        self.features = features

    def decide(self, space: str, result: MatchResult) -> Decision | None:
        """Match / no-match for RESULT's top hit, from the catalog's calibration for SPACE ("image" or "text")."""
        top = result.matches[0].score if result.matches else None
        return decide(self.facts.calibrations().get(space), top, result.margin, result.inliers)

    @property
    def verifies(self) -> bool:
        """True when image queries are verified geometrically (settings.verify_depth > 0)."""
        return self.features is not None and self.features.enabled

    def _verified(
        self,
        image: np.ndarray,
        text: np.ndarray | None,
        keypoints: Keypoints,
        top_k: int,
        filters: Sequence[Filter],
        image_weight: float,
        started: float,
        words: str | None = None,
    ) -> MatchResult:
        """A photo query (with a text or not) whose top products are re-ranked by geometric verification
        (matching/verification.py): each verified product's image score gains its inlier bonus, and the top hit's
        inliers go to the decision. The text's WORDS make its scores hybrid, as in a lone text query."""
        self.check_query(top_k, filters)
        depth = max(top_k, DECISION_DEPTH, self.verify_depth)
        by_image = self.image_query_scores(image, depth, filters)
        if text is not None:
            candidates = set(by_image) | set(self.text_query_scores(text, depth, filters, words))
            by_image = self.score_products("image", image, candidates)
        by_image = self.coloured(keypoints, by_image)
        counts = self.verify(keypoints, by_image)
        scores = fuse(by_image, counts)
        if text is not None:
            by_text = self.score_products("text", text, set(scores), words)
            scores = {
                pid: image_weight * score + (1 - image_weight) * by_text.get(pid, 0.0) for pid, score in scores.items()
            }
        result = self._result(scores, top_k, started)
        result.inliers = counts.get(result.matches[0].id, 0) if result.matches else None
        return result

    def match_regions(
        self,
        vectors: np.ndarray,
        boxes: Sequence[Box],
        keypoints: Keypoints | None,
        top_k: int = 10,
        filters: Sequence[Filter] = (),
        started: float | None = None,
    ) -> MatchResult:
        """A photo searched as several regions (VECTORS, one per box of BOXES; matching/regions.py): a product
        scores as its best region, then the top products are verified against the whole photo's KEYPOINTS. The
        result's box is the region that gave the top hit its score."""
        started = time.perf_counter() if started is None else started
        self.check_query(top_k, filters)
        depth = max(top_k, DECISION_DEPTH, self.verify_depth)
        scores, where = best_regions([self.image_query_scores(vector, depth, filters) for vector in vectors])
        if keypoints is not None:
            scores = self.coloured(keypoints, scores)
        counts = self.verify(keypoints, scores) if keypoints is not None and self.verifies else None
        result = self._result(fuse(scores, counts or {}), top_k, started)
        if result.matches:
            result.box = list(boxes[where[result.matches[0].id]])
            result.inliers = None if counts is None else counts.get(result.matches[0].id, 0)
        return result

    def coloured(self, keypoints: Keypoints, scores: dict[str, float], skip_sha: str | None = None) -> dict[str, float]:
        """SCORES with each product's colour similarity to the query photo added (matching/colour.py), when the
        query's KEYPOINTS carry its colour histogram (settings.colour_weight > 0). SKIP_SHA: an image left out."""
        if self.features is None or keypoints.colour is None:
            return scores
        return fuse_colour(scores, self.features.colours(keypoints, list(scores), self.facts.products, skip_sha))

    @property
    def verify_depth(self) -> int:
        return self.features.depth if self.features is not None else 0

    def verify(
        self, keypoints: Keypoints, scores: dict[str, float], early_stop: bool = True, skip_sha: str | None = None
    ) -> dict[str, int]:
        """Inliers of the best-scoring products (up to verify_depth, in rank order) for a query's KEYPOINTS."""
        if self.features is None:
            return {}
        ranked = [pid for pid, _ in rank(scores, self.features.depth)]
        return self.features.verify(keypoints, ranked, self.facts.products, early_stop, skip_sha)

    def match_vectors(
        self,
        image: np.ndarray | None,
        text: np.ndarray | None,
        top_k: int = 10,
        filters: Sequence[Filter] = (),
        image_weight: float = 0.5,
        started: float | None = None,
        keypoints: Keypoints | None = None,
        words: str | None = None,
    ) -> MatchResult:
        """Match embedded queries: an image, a text, or both (a photo plus "but in red"). WORDS, the text query's
        own words, make its text scores hybrid (lexical + dense).

        Both: each candidate from either search gets w * image-query score + (1 - w) * text-query score, both
        computed exactly (w = IMAGE_WEIGHT). With the photo's KEYPOINTS its image scores are verified first."""
        started = time.perf_counter() if started is None else started
        if image is not None and keypoints is not None and self.verifies:
            return self._verified(image, text, keypoints, top_k, filters, image_weight, started, words)
        self.check_query(top_k, filters)
        depth = max(top_k, DECISION_DEPTH)
        if image is not None and text is None:
            return self._result(self.image_query_scores(image, depth, filters), top_k, started)
        if text is not None and image is None:
            return self._result(self.text_query_scores(text, depth, filters, words), top_k, started)
        if image is None or text is None:
            raise InvalidQueryError("give an image, a text, or both")
        return self._result(self._both(image, text, depth, filters, image_weight, words), top_k, started)

    def _both(
        self,
        image: np.ndarray,
        text: np.ndarray,
        depth: int,
        filters: Sequence[Filter],
        image_weight: float,
        words: str | None = None,
    ) -> dict[str, float]:
        candidates = set(self.image_query_scores(image, depth, filters)) | set(
            self.text_query_scores(text, depth, filters, words)
        )
        by_image = self.score_products("image", image, candidates)
        by_text = self.score_products("text", text, candidates, words)  # hybrid with WORDS, as a lone text query
        return {
            pid: image_weight * by_image.get(pid, 0.0) + (1 - image_weight) * by_text.get(pid, 0.0)
            for pid in candidates
        }

    def image_query_scores(self, query: np.ndarray, top_k: int, filters: Sequence[Filter] = ()) -> dict[str, float]:
        """Product scores for an embedded image query."""
        return self.search_space("image", query, top_k, filters)

    def query_scores(
        self, space: str, query: np.ndarray, top_k: int, filters: Sequence[Filter] = (), words: str | None = None
    ) -> dict[str, float]:
        """Product scores for an embedded query of SPACE ("image" or "text"; WORDS: the text query's words)."""
        if space == "image":
            return self.image_query_scores(query, top_k, filters)
        return self.text_query_scores(query, top_k, filters, words)

    def text_query_scores(
        self, query: np.ndarray, top_k: int, filters: Sequence[Filter] = (), words: str | None = None
    ) -> dict[str, float]:
        """Product scores for an embedded text query: hybrid when its WORDS are given (module docstring)."""
        if words is None or not self.settings.hybrid_text:
            return self._dense_text_scores(query, top_k, filters)
        dense = self._dense_text_scores(query, max(top_k, self.settings.lexical_depth), filters)
        lexical = self.facts.lexical()
        asked = lexical.query(words)
        found = lexical.top(asked, max(top_k, self.settings.lexical_depth), filters)
        if missing := set(found) - set(dense):
            dense |= self.score_products("text", query, missing)
        return self._hybrid(lexical, asked, dense, set(dense) | set(found))

    def _hybrid(
        self, lexical: LexicalIndex, asked: LexicalQuery, dense: dict[str, float], candidates: set[str]
    ) -> dict[str, float]:
        """The hybrid score of each candidate (module docstring); DENSE holds each one's exact dense score. One
        LEXICAL index answers the whole query (a write meanwhile may replace the catalog's)."""
        weights = self.settings
        attribute_weight = weights.hybrid_attribute_weight if asked.phrases else 0.0
        total = weights.hybrid_dense_weight + weights.hybrid_lexical_weight + attribute_weight
        if total <= 0:
            return dict(dense)
        return {
            pid: (
                weights.hybrid_dense_weight * dense.get(pid, 0.0)
                + weights.hybrid_lexical_weight * lexical.score(asked, pid)
                + attribute_weight * lexical.share(asked, pid)
            )
            / total
            for pid in candidates
        }

    def _dense_text_scores(self, query: np.ndarray, top_k: int, filters: Sequence[Filter]) -> dict[str, float]:
        """Product scores for an embedded text query, fused with image scores in a shared space."""
        text_scores = self.search_space("text", query, top_k, filters)
        if not self.model.shared_space:
            return text_scores
        image_scores = self.search_space("image", query, top_k, filters)
        return self._fuse(query, set(text_scores) | set(image_scores))

    def search_space(self, space: str, query: np.ndarray, top_k: int, filters: Sequence[Filter]) -> dict[str, float]:
        """Best score per product in SPACE for up to TOP_K products passing FILTERS (filters run in the search)."""
        index = self.stores.index(space)
        scope = None
        if filters:
            store = self.stores.store
            scope = SearchScope(filters, functools.cache(lambda: store.vector_ids(space, filters)))
        fetch, size = top_k * 2, len(index)
        while True:
            scores, ids = index.search(query, fetch, scope)
            best = self._best_per_product(scores[0], ids[0])
            exhausted = int((ids[0] >= 0).sum()) < fetch  # the index had no more vectors in scope
            if len(best) >= top_k or exhausted or fetch >= size:
                return best
            fetch = min(size, fetch * 4)  # many images per product: widen until TOP_K distinct products

    def _best_per_product(self, scores: np.ndarray, ids: np.ndarray) -> dict[str, float]:
        valid = ids >= 0
        owners = self.facts.owners(ids[valid].tolist())
        best: dict[str, float] = {}
        for vector_id, score in zip(ids[valid].tolist(), scores[valid].tolist(), strict=True):
            owner = owners.get(vector_id)
            if owner is not None and score > best.get(owner, -np.inf):
                best[owner] = float(score)
        return best

    def score_products(
        self, space: str, query: np.ndarray, product_ids: set[str], words: str | None = None
    ) -> dict[str, float]:
        """Exact scores of the given products for an embedded query of SPACE ("image" or "text"), as ranked; a
        text query with its WORDS scores as hybrid."""
        if space == "text" and words is not None and self.settings.hybrid_text:
            dense, lexical = self.score_products("text", query, product_ids), self.facts.lexical()
            return self._hybrid(lexical, lexical.query(words), dense, set(product_ids))
        if space == "image":
            return self._exact_scores(query, product_ids, "image")
        if self.model.shared_space:
            return self._fuse(query, product_ids)
        return self._exact_scores(query, product_ids, "text")

    def _fuse(self, query: np.ndarray, candidates: set[str]) -> dict[str, float]:
        weight = self.settings.text_weight
        per_space = {space: self._exact_scores(query, candidates, space) for space in ("text", "image")}
        fused: dict[str, float] = {}
        for product_id in candidates:
            text, image = per_space["text"].get(product_id), per_space["image"].get(product_id)
            if text is not None and image is not None:
                fused[product_id] = weight * text + (1 - weight) * image
            else:
                fused[product_id] = text if text is not None else image  # type: ignore[assignment]
        return fused

    def _exact_scores(self, query: np.ndarray, candidates: set[str], space: str) -> dict[str, float]:
        per_product = self.facts.product_vectors(sorted(candidates), space)
        if not per_product:
            return {}
        owners = list(per_product)
        rows = [per_product[owner] for owner in owners]
        scores = np.concatenate(rows) @ query
        starts = np.cumsum([0, *(len(vectors) for vectors in rows[:-1])])
        # a product scores as its best vector (its best photo): one reduction over each product's run of rows
        return dict(zip(owners, np.maximum.reduceat(scores, starts).tolist(), strict=True))

    def check_query(self, top_k: int, filters: Sequence[Filter]) -> None:
        """Raise for an out-of-range top_k or an unknown filter key (cheap: run it before embedding)."""
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidQueryError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        check_keys(list(filters), self.facts.attribute_keys())

    def _result(self, scores: dict[str, float], top_k: int, started: float) -> MatchResult:
        ranked = rank(scores, top_k)
        margin = margin_of(scores, ranked[0][0], self.facts.duplicate_groups()) if ranked else 0.0
        products = self.facts.products([product_id for product_id, _ in ranked])
        matches = [Match(pid, round(score, 6), products[pid].as_dict()) for pid, score in ranked if pid in products]
        took_ms = round((time.perf_counter() - started) * 1000, 3)
        return MatchResult(matches, self.model.name, took_ms, margin)


def rank(scores: dict[str, float], top_k: int) -> list[tuple[str, float]]:
    """Best first; equal scores in id order so results are reproducible."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:top_k]
