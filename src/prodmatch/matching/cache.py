"""An LRU cache of query embeddings, keyed by the hash of the uploaded bytes or of the normalised text."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
from cachetools import LRUCache


def image_key(data: bytes) -> str:
    return "image:" + hashlib.sha256(data).hexdigest()


def text_key(text: str) -> str:
    """Case and whitespace do not change a text query's meaning for these models' tokenizers' purposes here."""
    return "text:" + hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()


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

    def __len__(self) -> int:
        return len(self._entries)
