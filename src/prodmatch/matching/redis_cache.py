"""The query-embedding cache in Redis: every worker and host serving one catalog shares what any of them embedded.

Values are the raw float32 bytes of the unit vector (2 KB for 512 dims); keys are NAMESPACE:KEY, the namespace
being the model's fingerprint, so two catalogs with different models can share one Redis safely."""

from __future__ import annotations

import logging

import numpy as np

from prodmatch.errors import ProdmatchError

try:
    import redis
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ProdmatchError("cache_url=redis://... needs the redis extra: pip install 'prodmatch[redis]'") from exc

log = logging.getLogger(__name__)
# A cache lookup must never cost more than the model run it saves (~20-50 ms): fail fast to a miss.
SOCKET_TIMEOUT_S = 0.05


class RedisCache:
    """Unit vectors in Redis with a time to live; a Redis that is down or slow reads as a miss."""

    def __init__(self, url: str, namespace: str, ttl_s: float) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
        )
        self._namespace = namespace
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self.hits = 0
        self.misses = 0

    def _key(self, key: str) -> str:
        return f"prodmatch:{self._namespace}:{key}"

    def get(self, key: str) -> np.ndarray | None:
        try:
            data = self._client.get(self._key(key))
        except redis.RedisError as exc:
            log.warning("query cache unavailable, embedding anyway: %s", exc)
            data = None
        if not isinstance(data, bytes):
            self.misses += 1
            return None
        self.hits += 1
        return np.frombuffer(data, dtype=np.float32).copy()

    def put(self, key: str, vector: np.ndarray) -> None:
        try:
            self._client.set(self._key(key), np.ascontiguousarray(vector, dtype=np.float32).tobytes(), px=self._ttl_ms)
        except redis.RedisError as exc:
            log.warning("query cache unavailable, not kept: %s", exc)

    def close(self) -> None:
        self._client.close()
