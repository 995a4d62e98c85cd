"""Query-embedding caches, keyed by the hash of the uploaded bytes or of the normalised text: an LRU in this
process (the default), or Redis (`cache_url = redis://...`) so that several workers or hosts share one."""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol

import numpy as np
from cachetools import LRUCache


def image_key(data: bytes) -> str:
    return "image:" + hashlib.sha256(data).hexdigest()


def text_key(text: str) -> str:
    """Case and whitespace do not change a text query's meaning for these models' tokenizers' purposes here."""
    return "text:" + hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()


class QueryCache(Protocol):
    """Unit vectors by query key. A cache that cannot answer (a Redis that is down) answers None: a miss costs
    one model run, never a failed query."""

    def get(self, key: str) -> np.ndarray | None: ...

    def put(self, key: str, vector: np.ndarray) -> None: ...

    def close(self) -> None: ...


class EmbeddingCache:
    """Thread-safe LRU of unit vectors with hit / miss counts."""

    def __init__(self, max_entries: int) -> None:
        self._entries: LRUCache[str, np.ndarray] = LRUCache(maxsize=max(1, max_entries))
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vector = self._entries.get(key)
            if vector is None:
                self.misses += 1
            else:
                self.hits += 1
            return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        with self._lock:
            self._entries[key] = vector

    def close(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def create_cache(url: str | None, max_entries: int, namespace: str, ttl_s: float) -> QueryCache:
    """The query cache for URL: None -> an LRU of MAX_ENTRIES in this process; redis://HOST:PORT/DB -> Redis,
    its keys under NAMESPACE (the model's fingerprint: vectors of another model never answer) and kept TTL_S."""
    if not url:
        return EmbeddingCache(max_entries)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from prodmatch.matching.redis_cache import RedisCache  # the redis extra, imported only when chosen

        return RedisCache(url, namespace, ttl_s)
    raise ValueError(f"cache_url {url!r}: expected redis://HOST:PORT/DB (or unset for the in-process LRU)")
