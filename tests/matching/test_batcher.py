"""Micro-batching, the embedding cache and the query log writer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
from sqlalchemy.exc import OperationalError

from prodmatch.matching.batcher import MicroBatcher
from prodmatch.matching.cache import EmbeddingCache, text_key
from prodmatch.matching.query_log import QueryLog
from prodmatch.stores.records import QueryLogEntry


def run_batched(count: int, max_batch: int, max_wait_ms: float) -> tuple[list[int], list[np.ndarray], float]:
    sizes: list[int] = []

    def embed(items: Sequence[int]) -> np.ndarray:
        return np.array([[float(item)] for item in items])

    async def main() -> tuple[list[np.ndarray], float]:
        batcher: MicroBatcher[int] = MicroBatcher(embed, max_batch, max_wait_ms, ThreadPoolExecutor(1), sizes.append)
        batcher.start()
        started = time.perf_counter()
        results = await asyncio.gather(*(batcher.embed(i) for i in range(count)))
        elapsed = time.perf_counter() - started
        await batcher.stop()
        return list(results), elapsed

    results, elapsed = asyncio.run(main())
    return sizes, results, elapsed


def test_concurrent_items_are_embedded_together_and_answered_in_order() -> None:
    sizes, results, _ = run_batched(20, max_batch=8, max_wait_ms=50)
    assert sizes == [8, 8, 4]
    assert [float(r[0]) for r in results] == [float(i) for i in range(20)]


def test_a_lone_request_waits_no_longer_than_the_max_wait() -> None:
    sizes, _, elapsed = run_batched(1, max_batch=8, max_wait_ms=20)
    assert sizes == [1] and elapsed < 0.5


def test_cache_counts_hits_and_normalises_text_keys() -> None:
    cache = EmbeddingCache(max_entries=2)
    cache.put(text_key("Red  Shirt"), np.ones(2))
    assert cache.get(text_key("red shirt")) is not None and cache.get(text_key("blue")) is None
    cache.put("a", np.zeros(2))
    cache.put("b", np.zeros(2))  # evicts the least recently used
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 2)


class UnreachableStore:
    """A store whose database is gone: the one fault the log must survive that a test cannot cause by hand."""

    def append_queries(self, entries: Sequence[QueryLogEntry]) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))


def test_query_log_never_raises_into_requests_and_counts_losses() -> None:
    log = QueryLog(UnreachableStore(), capacity=10)  # type: ignore[arg-type]
    log.start()
    entry = QueryLogEntry(datetime.now(UTC), "text", "h", ["1"], [0.9], 3.0, True, 0.9)
    for _ in range(3):
        log.record(entry)
    log.flush()
    log.stop()
    assert log.dropped == 3 and log.written == 0
