"""The match use case: check the query, embed it, search, decide, find keywords, log. The CLI runs it in process;
the API embeds through its micro-batchers and cache and hands the vectors to `Matcher.answer`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from PIL import Image

from prodmatch.composition import Catalog
from prodmatch.errors import InvalidQueryError, InvalidTextError
from prodmatch.matching.cache import image_key, text_key
from prodmatch.matching.decision import Decision
from prodmatch.matching.keywords import Keyword, keywords
from prodmatch.matching.regions import WHOLE, Box, crops, proposals
from prodmatch.matching.service import MatchResult
from prodmatch.matching.verification import Keypoints
from prodmatch.stores.filters import Filter
from prodmatch.stores.protocols import MetadataStore
from prodmatch.stores.records import QueryLogEntry

LOGGED_MATCHES = 10
# The stages a query's time is split into (MatchAnswer.timings, the API's prodmatch_stage_seconds histogram).
# cache: the query-embedding cache lookup (the API's; a hit skips decode, preprocess and model); search includes
# reading the matched products' rows (the join); decide includes the keywords.
STAGES = ("cache", "decode", "preprocess", "model", "verify", "search", "decide", "log")


class Timings:
    """Milliseconds per stage of one query. perf_counter pairs cost well under a microsecond, so every query is
    timed; the answer shows them only when asked (MatchQuery.profile)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.ms: dict[str, float] = {}
        self._clock = clock  # wall time; a benchmark on a busy machine may pass time.process_time (CPU seconds)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = self._clock()
        try:
            yield
        finally:
            self.add(name, (self._clock() - started) * 1000)

    def add(self, name: str, ms: float) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + ms

    def rounded(self) -> dict[str, float]:
        return {name: round(ms, 3) for name, ms in self.ms.items()}


@dataclass
class MatchQuery:
    """One match request: a photo (raw bytes), a text, or both, with what to return."""

    image: bytes | None = None
    text: str | None = None
    image_weight: float = 0.5
    top_k: int = 10
    filters: Sequence[Filter] = ()
    min_score: float | None = None
    request_id: str = ""  # the HTTP request's id, kept in the query log beside the answer's
    profile: bool = False  # return the per-stage timings with the answer

    @property
    def space(self) -> str:
        """The space whose calibration decides: a photo's when there is one."""
        return "image" if self.image is not None else "text"

    @property
    def modality(self) -> str:
        return "+".join(name for name, given in (("image", self.image), ("text", self.text)) if given is not None)

    def digest(self) -> str:
        """What the query log keeps of the query: hashes, never the photo or the text."""
        parts = [image_key(self.image) if self.image is not None else "", text_key(self.text) if self.text else ""]
        return "".join(parts)[:80]


@dataclass
class MatchAnswer:
    result: MatchResult
    decision: Decision | None
    keywords: list[Keyword] = field(default_factory=list)
    query_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # names this answer, for feedback
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage (STAGES), always measured
    show_timings: bool = False  # the query asked for them (MatchQuery.profile)

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON: query_id, matches, model, took_ms, decision (with its evidence), keywords, box (the
        region of the query photo that matched; null unless region search is on), and timings when asked."""
        body = {
            "query_id": self.query_id,
            **self.result.as_dict(),
            "decision": None if self.decision is None else self.decision.__dict__,
            "keywords": [keyword.__dict__ for keyword in self.keywords],
            "box": self.result.box,
        }
        if self.show_timings:
            body["timings"] = self.timings
        return body


class QueryLogSink(Protocol):
    """Where answered queries go: straight to the store (CLI) or through a background writer (API)."""

    def record(self, entry: QueryLogEntry) -> None: ...


class DirectQueryLog:
    """Writes each entry to the metadata store at once."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def record(self, entry: QueryLogEntry) -> None:
        self._store.append_queries([entry])


class Matcher:
    """Answers match queries against one catalog."""

    def __init__(self, catalog: Catalog, log: QueryLogSink, max_text_chars: int) -> None:
        self.catalog = catalog
        self.log = log
        self.max_text_chars = max_text_chars

    def check(self, query: MatchQuery) -> None:
        """Raise for a query that cannot be answered, before any model time is spent on it."""
        if query.image is None and query.text is None:
            raise InvalidQueryError("give an image, a text, or both")
        if query.text is not None:
            check_text(query.text, self.max_text_chars)
        self.catalog.matcher.check_query(query.top_k, query.filters)

    def match(self, query: MatchQuery, timings: Timings | None = None) -> MatchAnswer:
        """The whole use case in this process: check, decode and embed, then answer (stages timed in TIMINGS)."""
        started, timings = time.perf_counter(), timings or Timings()
        self.check(query)
        embedder = self.catalog.embedder()
        photo = vectors = text = None
        if query.image is not None:
            with timings.stage("decode"):
                photo = self.catalog.decode(query.image)
            regions = self._regions(query, photo)
            with timings.stage("preprocess"):
                pixels = embedder.pixels([photo, *crops(photo, regions[1:])])
            with timings.stage("model"):
                vectors = embedder.embed_pixels(pixels)
        if query.text is not None:
            with timings.stage("model"):
                text = embedder.embed_texts([query.text])[0]
        image = None if vectors is None else vectors[0]
        return self.answer(query, image, text, started, timings, photo, vectors)

    def answer(
        self,
        query: MatchQuery,
        image: np.ndarray | None,
        text: np.ndarray | None,
        started: float,
        timings: Timings | None = None,
        photo: Image.Image | None = None,
        region_vectors: np.ndarray | None = None,
    ) -> MatchAnswer:
        """Search with the embedded query, decide on the top hit, find keywords and log it. TIMINGS (the stages
        before this one) gets the rest added and goes with the answer. PHOTO is the decoded query photo when the
        caller has it (it is decoded again for verification otherwise); REGION_VECTORS, the embedded regions of the
        photo (whole frame first) when region search is on and the caller embedded them."""
        timings = timings or Timings()
        keypoints = None
        if image is not None:
            with timings.stage("verify"):
                photo = self._photo(query, photo)
                keypoints = self._keypoints(photo)
        regions = self._regions(query, photo)
        if image is not None and photo is not None and len(regions) > 1 and region_vectors is None:
            with timings.stage("model"):
                region_vectors = np.vstack([image, self.catalog.embedder().embed_images(crops(photo, regions[1:]))])
        with timings.stage("search"), self.catalog.lock:
            result = self._search(query, image, text, started, keypoints, regions, region_vectors)
        service = self.catalog.matcher
        with timings.stage("decide"):
            if query.min_score is not None:
                result.matches = [m for m in result.matches if m.score >= query.min_score]
            answer = MatchAnswer(result, service.decide(query.space, result))
            answer.keywords = keywords([m.product for m in result.matches], self.catalog.facts.value_shares())
        with timings.stage("log"):
            self.log.record(log_entry(query, answer, self._keep_photo(query)))
        answer.timings, answer.show_timings = timings.rounded(), query.profile
        return answer

    def _search(
        self,
        query: MatchQuery,
        image: np.ndarray | None,
        text: np.ndarray | None,
        started: float,
        keypoints: Keypoints | None,
        regions: list[Box],
        region_vectors: np.ndarray | None,
    ) -> MatchResult:
        """The ranked result: over the photo's regions when region search embedded them, else the whole query."""
        service = self.catalog.matcher
        if len(regions) > 1 and region_vectors is not None:
            return service.match_regions(region_vectors, regions, keypoints, query.top_k, query.filters, started)
        return service.match_vectors(
            image, text, query.top_k, query.filters, query.image_weight, started, keypoints, words=query.text
        )

    def _photo(self, query: MatchQuery, photo: Image.Image | None) -> Image.Image | None:
        """The decoded query photo, when verification or region search needs it."""
        settings = self.catalog.settings.matching
        if photo is not None or query.image is None or not (self.catalog.matcher.verifies or settings.regions):
            return photo
        return self.catalog.decode(query.image)

    def _keypoints(self, photo: Image.Image | None) -> Keypoints | None:
        """The query photo's local features when image queries are verified; found before the catalog lock is
        taken (they need no index), so parallel requests overlap there."""
        if photo is None or not self.catalog.matcher.verifies:
            return None
        return self.catalog.features.of_query(photo)

    def _regions(self, query: MatchQuery, photo: Image.Image | None) -> list[Box]:
        """The boxes searched for a photo-only query (whole frame first); just the whole frame without region
        search, and for photo + text queries (the text says what to look for)."""
        if photo is None or query.text is not None or not self.catalog.settings.matching.regions:
            return [WHOLE]
        return proposals(*photo.size)

    def _keep_photo(self, query: MatchQuery) -> str | None:
        """Keep the query photo, so that a person's confirmation can teach it to the product (feedback)."""
        if query.image is None or not self.catalog.settings.matching.learn_from_feedback:
            return None
        return self.catalog.files.save_query_photo(query.image)


def check_text(text: str, max_chars: int) -> None:
    if not text.strip():
        raise InvalidTextError("text is empty")
    if len(text) > max_chars:
        raise InvalidTextError(f"text is {len(text)} characters; the limit is {max_chars}")


def log_entry(query: MatchQuery, answer: MatchAnswer, photo_sha: str | None = None) -> QueryLogEntry:
    result, decision = answer.result, answer.decision
    return QueryLogEntry(
        datetime.now(UTC),
        query.modality,
        query.digest(),
        [m.id for m in result.matches[:LOGGED_MATCHES]],
        [m.score for m in result.matches[:LOGGED_MATCHES]],
        result.took_ms,
        None if decision is None else decision.is_match,
        None if decision is None else decision.confidence,
        answer.query_id,
        query.request_id,
        photo_sha,
    )
