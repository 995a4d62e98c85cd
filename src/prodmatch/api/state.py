"""Everything the API needs, built once in the app's lifespan and torn down with it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np
from PIL import Image

from prodmatch.api.access import Gate
from prodmatch.api.limits import RateLimiter
from prodmatch.api.metrics import Metrics
from prodmatch.application.querying import MatchAnswer, Matcher, MatchQuery, Timings, check_text
from prodmatch.composition import Catalog, EmbedderFactory
from prodmatch.config import LOOPBACK_HOSTS, Settings
from prodmatch.errors import ModelServerUnavailableError, ModelTimeoutError, ProdmatchError, StoreUnavailableError
from prodmatch.matching.batcher import MicroBatcher
from prodmatch.matching.cache import EmbeddingCache, QueryCache, create_cache, image_key, text_key
from prodmatch.matching.query_log import QueryLog
from prodmatch.stores.availability import unavailable_reason
from prodmatch.stores.records import ApiKey

P = ParamSpec("P")
T = TypeVar("T")
OPEN_RETRY_S = 1.0
KEYS_RECHECK_S = 5.0  # how soon a first key created while serving turns key checks on (loopback)
PRUNE_EVERY_S = 3600.0  # how often kept query photos past their retention are deleted


@dataclass
class OpenCatalog:
    """What exists once the catalog's stores have been reached."""

    catalog: Catalog
    matcher: Matcher
    query_log: QueryLog
    image_batcher: MicroBatcher[np.ndarray]
    text_batcher: MicroBatcher[str]


class AppState:
    """The catalog, the match use case, micro-batchers, the embedding cache, the query log and metrics.

    Searches and catalog writes share the catalog's lock (the use cases take it); the model runs outside it, in
    the batchers' executor thread."""

    def __init__(self, settings: Settings, metrics: Metrics, embedders: EmbedderFactory) -> None:
        self.settings = settings
        self.metrics = metrics
        self._embedders = embedders
        # Replaced once the catalog is open: a shared (Redis) cache is namespaced by the model's fingerprint.
        self.cache: QueryCache = EmbeddingCache(settings.serve.cache_entries)
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._work_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="work")
        self._open: OpenCatalog | None = None
        self._opening = asyncio.Lock()
        self._open_error: StoreUnavailableError | ModelServerUnavailableError | None = None
        self._open_tried_at = -float("inf")
        serve = settings.serve
        self.gate = Gate(RateLimiter(serve.rate_per_s, serve.rate_burst), self._keys_required, self._key_lookup)
        self._keys_known: tuple[float, bool] = (-float("inf"), False)
        self._pruner: asyncio.Task[None] | None = None

    def _keys_required(self) -> bool:
        """Keys are required when the settings say so, beyond loopback, and on loopback once any key exists."""
        serve = self.settings.serve
        if serve.insecure_no_auth:
            return False
        if serve.require_keys is not None:
            return serve.require_keys
        if serve.host not in LOOPBACK_HOSTS:
            return True
        checked_at, exists = self._keys_known
        if time.monotonic() - checked_at > KEYS_RECHECK_S:
            exists = any(key.revoked_at is None for key in self.catalog.store.api_keys())
            self._keys_known = (time.monotonic(), exists)
        return exists

    def _key_lookup(self) -> Callable[[str], ApiKey | None]:
        return self.catalog.store.find_api_key

    async def ensure_open(self) -> None:
        """Open the catalog (stores, model, batchers) if it is not open yet.

        A store that is down at start-up leaves the app running and unready; each later request retries (at
        most once per OPEN_RETRY_S, failing fast in between) until the store is back."""
        if self._open is not None:
            return
        async with self._opening:
            if self._open is not None:
                return
            if time.monotonic() - self._open_tried_at < OPEN_RETRY_S and self._open_error:
                raise type(self._open_error)(str(self._open_error))
            self._open_tried_at = time.monotonic()
            try:
                catalog = await self.run(self._open_catalog)
            except (StoreUnavailableError, ModelServerUnavailableError) as exc:
                self._open_error = exc
                raise
            self._open = self._start(catalog)
            self._open_error = None

    def _open_catalog(self) -> Catalog:
        catalog = Catalog.open(self.settings, embedders=self._embedders)
        try:
            catalog.warm()  # model loaded, indexes opened and checked, before the first query
        except BaseException:
            catalog.close()
            raise
        return catalog

    def _start(self, catalog: Catalog) -> OpenCatalog:
        embedder = catalog.embedder()
        serve = self.settings.serve
        self.cache = create_cache(self.settings.cache_url, serve.cache_entries, embedder.fingerprint, serve.cache_ttl_s)
        query_log = QueryLog(catalog.store)
        opened = OpenCatalog(
            catalog,
            Matcher(catalog, query_log, self.settings.serve.max_text_chars),
            query_log,
            self._batcher(lambda pixels: embedder.embed_pixels(np.concatenate(pixels)), "image"),
            self._batcher(embedder.embed_texts, "text"),
        )
        opened.image_batcher.start()
        opened.text_batcher.start()
        opened.query_log.start()
        self._pruner = asyncio.create_task(self._prune_query_photos(catalog), name="prune-query-photos")
        return opened

    async def _prune_query_photos(self, catalog: Catalog) -> None:
        """Delete kept query photos once they are older than matching.keep_query_photos_days, now and hourly."""
        keep_s = self.settings.matching.keep_query_photos_days * 86400
        while True:
            await self.run(catalog.files.forget_query_photos, keep_s)
            await asyncio.sleep(PRUNE_EVERY_S)

    def _batcher(self, embed: Callable[[Sequence[T]], np.ndarray], space: str) -> MicroBatcher[T]:
        serve = self.settings.serve
        observe = self.metrics.batch_size.labels(space).observe
        return MicroBatcher(embed, serve.batch_size, serve.batch_wait_ms, self._model_thread, observe)

    def _opened(self) -> OpenCatalog:
        if self._open is None:
            raise (
                type(self._open_error)(str(self._open_error))
                if self._open_error
                else StoreUnavailableError("the catalog is not open yet")
            )
        return self._open

    @property
    def is_open(self) -> bool:
        return self._open is not None

    @property
    def catalog(self) -> Catalog:
        return self._opened().catalog

    @property
    def query_log(self) -> QueryLog:
        return self._opened().query_log

    async def start(self) -> None:
        """Open the catalog now if its stores and model server are up; if not, the app starts unready and keeps
        trying."""
        with contextlib.suppress(StoreUnavailableError, ModelServerUnavailableError):
            await self.ensure_open()

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        if (opened := self._open) is not None:
            await opened.image_batcher.stop()
            await opened.text_batcher.stop()
            opened.query_log.stop()
            if self.settings.serve.workers == 1:  # several workers share a read-only catalog: none saves it
                with opened.catalog.lock:
                    opened.catalog.save()
            opened.catalog.close()
        self.cache.close()
        self._model_thread.shutdown(wait=False)
        self._work_threads.shutdown(wait=False)

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """FUNCTION(*ARGS) on a worker thread (decoding, searching, writing); an unreachable store becomes
        StoreUnavailableError (503)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._work_threads, lambda: function(*args, **kwargs))
        except Exception as exc:
            if isinstance(exc, ProdmatchError) or (reason := unavailable_reason(exc)) is None:
                raise
            raise StoreUnavailableError(reason) from exc

    async def match(self, query: MatchQuery) -> MatchAnswer:
        """The match use case, with the model's work micro-batched and cached."""
        started, timings = time.perf_counter(), Timings()
        opened = self._opened()
        await self.run(opened.matcher.check, query)
        image, photo = (
            await self._embed_image(opened, query.image, timings) if query.image is not None else (None, None)
        )
        text = await self._embed_text(opened, query.text, timings) if query.text is not None else None
        # the decoded photo goes along: verification needs it, and it is not decoded twice
        answer = await self.run(opened.matcher.answer, query, image, text, started, timings, photo)
        self.metrics.observe_stages(answer.timings)
        return answer

    async def _embed_image(
        self, opened: OpenCatalog, data: bytes, timings: Timings
    ) -> tuple[np.ndarray, Image.Image | None]:
        """The photo's vector, and the decoded photo unless the vector came from the cache."""
        key = image_key(data)
        with timings.stage("cache"):
            cached = self._cached(key)
        if cached is not None:
            return cached, None
        pixels, photo = await self.run(self._pixels, opened.catalog, data, timings)  # decode + resize on a worker
        with timings.stage("model"):  # includes the wait for the batch's other queries and the model thread
            vector = await self._in_time(opened.image_batcher.embed(pixels))
        self.cache.put(key, vector)
        return vector, photo

    async def _embed_text(self, opened: OpenCatalog, text: str, timings: Timings) -> np.ndarray:
        check_text(text, self.settings.serve.max_text_chars)
        key = text_key(text)
        with timings.stage("cache"):
            cached = self._cached(key)
        if cached is not None:
            return cached
        with timings.stage("model"):
            vector = await self._in_time(opened.text_batcher.embed(text))
        self.cache.put(key, vector)
        return vector

    async def _in_time(self, embedding: Awaitable[np.ndarray]) -> np.ndarray:
        """The model's answer, or ModelTimeoutError (503) after the time limit: a stuck model must not hold the
        request (or its client) forever."""
        limit = self.settings.serve.model_timeout_s
        try:
            return await asyncio.wait_for(embedding, limit)
        except TimeoutError as exc:
            raise ModelTimeoutError(f"the model did not answer within {limit:g} s; try again") from exc

    @staticmethod
    def _pixels(catalog: Catalog, data: bytes, timings: Timings) -> tuple[np.ndarray, Image.Image]:
        with timings.stage("decode"):
            image = catalog.decode(data)
        with timings.stage("preprocess"):
            return catalog.embedder().pixels([image]), image

    def _cached(self, key: str) -> np.ndarray | None:
        # On the event loop, even for Redis: a loopback GET is ~0.1 ms, less than a hop to a worker thread, and
        # the client's 50 ms socket timeout bounds a slow one (then it is a miss).
        vector = self.cache.get(key)
        self.metrics.cache.labels("hit" if vector is not None else "miss").inc()
        return vector
