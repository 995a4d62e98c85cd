"""Everything the API needs, built once in the app's lifespan and torn down with it."""

from __future__ import annotations

import asyncio
import contextlib
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
from prodmatch.errors import InvalidTextError, ModelServerUnavailableError, ProdmatchError, StoreUnavailableError
from prodmatch.matching.batcher import MicroBatcher
from prodmatch.matching.cache import EmbeddingCache, image_key, text_key
from prodmatch.matching.query_log import QueryLog
from prodmatch.matching.service import MatchResult, MatchService
from prodmatch.stores.availability import unavailable_reason
from prodmatch.stores.datadir import DataDir
from prodmatch.stores.filters import Filter
from prodmatch.stores.records import QueryLogEntry


@dataclass
class Query:
    """One match request after validation: raw image bytes and/or text."""

    image: bytes | None = None
    text: str | None = None
    image_weight: float = 0.5


OPEN_RETRY_S = 1.0


@dataclass
class OpenCatalog:
    """What exists once the catalog's stores have been reached."""

    datadir: DataDir
    service: MatchService
    query_log: QueryLog
    image_batcher: MicroBatcher[np.ndarray]
    text_batcher: MicroBatcher[str]


class AppState:
    """The data dir, the matching service, micro-batchers, the embedding cache, the query log and metrics.

    Searches and catalog writes share one lock: FAISS indexes must not change under a running search. The
    model runs outside it, in the batchers' executor thread.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.cache = EmbeddingCache(settings.serve.cache_entries)
        self.catalog_lock = threading.Lock()
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._work_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="work")
        self._catalog: OpenCatalog | None = None
        self._opening = asyncio.Lock()
        self._open_error: StoreUnavailableError | ModelServerUnavailableError | None = None
        self._open_tried_at = -float("inf")
        self._counts: dict[str, Counter[str]] | None = None
        self._shares: dict[tuple[str, str], float] | None = None

    async def ensure_open(self) -> None:
        """Open the catalog (stores, model, batchers) if it is not open yet.

        A store that is down at start-up leaves the app running and unready; each later request retries (at
        most once per OPEN_RETRY_S, failing fast in between) until the store is back."""
        if self._catalog is not None:
            return
        async with self._opening:
            if self._catalog is not None:
                return
            if time.monotonic() - self._open_tried_at < OPEN_RETRY_S and self._open_error:
                raise type(self._open_error)(str(self._open_error))
            self._open_tried_at = time.monotonic()
            try:
                datadir = await self.run(self._open_datadir)
            except (StoreUnavailableError, ModelServerUnavailableError) as exc:
                self._open_error = exc
                raise
            self._catalog = self._start_catalog(datadir)
            self._open_error = None

    def _open_datadir(self) -> DataDir:
        datadir = DataDir.open(self.settings)
        try:
            MatchService(datadir).warm()  # model loaded, indexes opened and checked, before the first query
        except BaseException:
            datadir.close()
            raise
        return datadir

    def _start_catalog(self, datadir: DataDir) -> OpenCatalog:
        embedder = datadir.embedder()
        serve = self.settings.serve
        catalog = OpenCatalog(
            datadir,
            MatchService(datadir),
            QueryLog(datadir.store),
            MicroBatcher(
                lambda pixels: embedder.embed_pixels(np.concatenate(pixels)),
                serve.batch_size,
                serve.batch_wait_ms,
                self._model_thread,
                lambda size: self.metrics.batch_size.labels("image").observe(size),
            ),
            MicroBatcher(
                embedder.embed_texts,
                serve.batch_size,
                serve.batch_wait_ms,
                self._model_thread,
                lambda size: self.metrics.batch_size.labels("text").observe(size),
            ),
        )
        catalog.image_batcher.start()
        catalog.text_batcher.start()
        catalog.query_log.start()
        return catalog

    def _opened(self) -> OpenCatalog:
        if self._catalog is None:
            raise (
                type(self._open_error)(str(self._open_error))
                if self._open_error
                else StoreUnavailableError("the catalog is not open yet")
            )
        return self._catalog

    @property
    def is_open(self) -> bool:
        return self._catalog is not None

    @property
    def datadir(self) -> DataDir:
        return self._opened().datadir

    @property
    def service(self) -> MatchService:
        return self._opened().service

    @property
    def query_log(self) -> QueryLog:
        return self._opened().query_log

    @property
    def image_batcher(self) -> MicroBatcher[np.ndarray]:
        return self._opened().image_batcher

    @property
    def text_batcher(self) -> MicroBatcher[str]:
        return self._opened().text_batcher

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
        """Open the catalog now if its stores and model server are up; if not, the app starts unready and keeps
        trying."""
        with contextlib.suppress(StoreUnavailableError, ModelServerUnavailableError):
            await self.ensure_open()

    async def stop(self) -> None:
        if (catalog := self._catalog) is not None:
            await catalog.image_batcher.stop()
            await catalog.text_batcher.stop()
            catalog.query_log.stop()
            with self.catalog_lock:
                catalog.datadir.save()
            catalog.datadir.close()
        self._model_thread.shutdown(wait=False)
        self._work_threads.shutdown(wait=False)

    async def run(self, function: Any, *args: Any) -> Any:
        """FUNCTION(*ARGS) on a worker thread (decoding, searching, writing); an unreachable store becomes
        StoreUnavailableError (503)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._work_threads, function, *args)
        except Exception as exc:
            if isinstance(exc, ProdmatchError) or (reason := unavailable_reason(exc)) is None:
                raise
            raise StoreUnavailableError(reason) from exc

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
        await self.run(self.service.check_query, top_k, filters)
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
