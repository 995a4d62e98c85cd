"""Rate limits: a token bucket per API key and one per client address.

A bucket holds up to `burst` tokens and refills at `rate` tokens a second; each request takes one, and a request
that finds its bucket empty gets 429 with Retry-After (the seconds until a token is back). Buckets live in this
process (each worker limits on its own share of the traffic) in a bounded LRU, so a flood of new addresses cannot
grow memory without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

from prodmatch.errors import RateLimitedError

MAX_BUCKETS = 100_000


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; 0.0 when granted, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Token buckets keyed by who is asking ("key:ID" or "ip:ADDRESS"); thread-safe."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: LRUCache[str, TokenBucket] = LRUCache(maxsize=MAX_BUCKETS)
        self._lock = threading.Lock()

    def check(self, *who: str) -> None:
        """Take a token from every bucket in WHO; RateLimitedError (429) when any of them is empty."""
        if self.rate <= 0:
            return  # limits off
        now = self._clock()
        with self._lock:
            wait = max(self._bucket(name, now).take(now) for name in who)
        if wait > 0:
            raise RateLimitedError("too many requests; slow down", retry_after=max(1, math.ceil(wait)))

    def _bucket(self, name: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket
