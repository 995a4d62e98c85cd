"""Everything the API needs, built once in the app's lifespan and torn down with it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from prodmatch.api.metrics import Metrics
from prodmatch.config import Settings
from prodmatch.errors import InvalidTextError
from prodmatch.matching.batcher import MicroBatcher
from prodmatch.matching.cache import EmbeddingCache, image_key, text_key
from prodmatch.matching.query_log import QueryLog
from prodmatch.matching.service import MatchResult, MatchService
from prodmatch.stores.datadir import DataDir
from prodmatch.stores.filters import Filter
from prodmatch.stores.records import QueryLogEntry


@dataclass
class Query:
    """One match request after validation: raw image bytes and/or text."""

    image: bytes | None = None
    text: str | None = None
    image_weight: float = 0.5


class AppState:
    """The data dir, the matching service, micro-batchers, the embedding cache, the query log and metrics.

    Searches and catalog writes share one lock: FAISS indexes must not change under a running search. The
    model runs outside it, in the batchers' executor thread.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.datadir = DataDir.open(settings)
        self.service = MatchService(self.datadir)
        self.service.warm()
        self.cache = EmbeddingCache(settings.serve.cache_entries)
        self.query_log = QueryLog(self.datadir.store)
        self.catalog_lock = threading.Lock()
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._work_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="work")
        embedder = self.datadir.embedder()
        serve = settings.serve
        self.image_batcher: MicroBatcher[np.ndarray] = MicroBatcher(
            lambda pixels: embedder.embed_pixels(np.concatenate(pixels)),
            serve.batch_size,
            serve.batch_wait_ms,
            self._model_thread,
            lambda size: self.metrics.batch_size.labels("image").observe(size),
        )
        self.text_batcher: MicroBatcher[str] = MicroBatcher(
            embedder.embed_texts,
            serve.batch_size,
            serve.batch_wait_ms,
            self._model_thread,
            lambda size: self.metrics.batch_size.labels("text").observe(size),
        )
        self._counts: dict[str, Counter[str]] | None = None
        self._shares: dict[tuple[str, str], float] | None = None

    def facets(self, max_values: int = 40) -> list[dict[str, Any]]:
        """Filterable attribute columns with their values and counts (columns with a few distinct text values)."""
        return [
            {"key": key, "values": [{"value": v, "count": n} for v, n in sorted(values.items())]}
            for key, values in sorted(self._value_counts().items())
            if 1 < len(values) <= max_values
        ]

    def value_shares(self) -> dict[tuple[str, str], float]:
        """Share of the catalog holding each (attribute, text value): the baseline for result keywords."""
        if self._shares is None:
            total = max(1, self.datadir.store.count())
            counts = self._value_counts()
            self._shares = {(key, value): n / total for key, values in counts.items() for value, n in values.items()}
        return self._shares

    def _value_counts(self) -> dict[str, Counter[str]]:
        if self._counts is None:
            counts: dict[str, Counter[str]] = {}
            store = self.datadir.store
            for offset in range(0, store.count(), 1000):
                for product in store.page(offset, 1000):
                    for key, value in product.attributes.items():
                        if isinstance(value, str) and len(value) <= 40:
                            counts.setdefault(key, Counter())[value] += 1
            self._counts = counts
        return self._counts

    def catalog_changed(self) -> None:
        self.service.refresh()
        self._counts = None
        self._shares = None

    async def start(self) -> None:
        self.image_batcher.start()
        self.text_batcher.start()
        self.query_log.start()

    async def stop(self) -> None:
        await self.image_batcher.stop()
        await self.text_batcher.stop()
        self.query_log.stop()
        with self.catalog_lock:
            self.datadir.save()
        self.datadir.close()
        self._model_thread.shutdown(wait=False)
        self._work_threads.shutdown(wait=False)

    async def run(self, function: Any, *args: Any) -> Any:
        """FUNCTION(*ARGS) on a worker thread (decoding, searching, writing)."""
        return await asyncio.get_running_loop().run_in_executor(self._work_threads, function, *args)

    async def embed_image(self, data: bytes) -> np.ndarray:
        key = image_key(data)
        if (cached := self._cached(key)) is not None:
            return cached
        pixels = await self.run(self._pixels, data)  # decode + resize on a worker, in parallel with the model
        vector = await self.image_batcher.embed(pixels)
        self.cache.put(key, vector)
        return vector

    async def embed_text(self, text: str) -> np.ndarray:
        if not text.strip():
            raise InvalidTextError("text is empty")
        if len(text) > self.settings.serve.max_text_chars:
            raise InvalidTextError(f"text is {len(text)} characters; the limit is {self.settings.serve.max_text_chars}")
        key = text_key(text)
        if (cached := self._cached(key)) is not None:
            return cached
        vector = await self.text_batcher.embed(text)
        self.cache.put(key, vector)
        return vector

    def _pixels(self, data: bytes) -> np.ndarray:
        return self.datadir.embedder().pixels([self.service.decode(data)])

    def _cached(self, key: str) -> np.ndarray | None:
        vector = self.cache.get(key)
        self.metrics.cache.labels("hit" if vector is not None else "miss").inc()
        return vector

    async def match(self, query: Query, top_k: int, filters: Sequence[Filter]) -> MatchResult:
        started = time.perf_counter()
        self.service.check_query(top_k, filters)
        image = await self.embed_image(query.image) if query.image is not None else None
        text = await self.embed_text(query.text) if query.text is not None else None
        result: MatchResult = await self.run(self._search, image, text, top_k, filters, query.image_weight, started)
        return result

    def _search(
        self,
        image: np.ndarray | None,
        text: np.ndarray | None,
        top_k: int,
        filters: Sequence[Filter],
        weight: float,
        started: float,
    ) -> MatchResult:
        with self.catalog_lock:
            return self.service.match_vectors(image, text, top_k, filters, weight, started)

    def log(self, query: Query, result: MatchResult, decision: Any) -> None:
        digest = image_key(query.image) if query.image is not None else ""
        digest += text_key(query.text) if query.text is not None else ""
        modality = "+".join(m for m, given in (("image", query.image), ("text", query.text)) if given is not None)
        self.query_log.record(
            QueryLogEntry(
                datetime.now(UTC),
                modality,
                digest[:80],
                [m.id for m in result.matches[:10]],
                [m.score for m in result.matches[:10]],
                result.took_ms,
                None if decision is None else decision.is_match,
                None if decision is None else decision.confidence,
            )
        )
