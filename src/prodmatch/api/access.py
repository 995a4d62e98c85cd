"""Who may call what: API keys with scopes (application.keys), and rate limits per key and per client address.

Keys are sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Whether they are required is decided at start-up
(prodmatch serve): always beyond loopback, and on loopback once the catalog has any key; the loopback demo with no
keys stays open. A verified key record is cached for CACHE_S seconds, so a revocation takes effect within that
time without a store round trip on every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cachetools import TTLCache
from fastapi import Request

from prodmatch.api.limits import RateLimiter
from prodmatch.application.keys import Scope, grants, secret_matches, split_key
from prodmatch.errors import AuthenticationError, PermissionDeniedError
from prodmatch.stores.records import ApiKey

CACHE_S = 5.0
KeyLookup = Callable[[str], ApiKey | None]


class Gate:
    """Checks a request's key (when keys are required) and its rate; remembers the key id for the access log."""

    def __init__(
        self, limiter: RateLimiter, keys_required: Callable[[], bool], lookup: Callable[[], KeyLookup]
    ) -> None:
        self.limiter = limiter
        self.keys_required = keys_required
        self._lookup = lookup
        self._verified: TTLCache[str, ApiKey | None] = TTLCache(maxsize=10_000, ttl=CACHE_S, timer=time.monotonic)
        self._lock = threading.Lock()

    def admit(self, request: Request, scope: Scope) -> None:
        """Raise 401/403/429 for a request that may not go on; otherwise note who it is."""
        address = request.client.host if request.client else "unknown"
        key_id = self._authorise(request, scope) if self.keys_required() else None
        request.scope.setdefault("state", {})["key_id"] = key_id
        self.limiter.check(f"ip:{address}", *([f"key:{key_id}"] if key_id else []))

    def _authorise(self, request: Request, scope: Scope) -> str:
        given = _presented_key(request)
        if given is None:
            raise AuthenticationError("an API key is required: send Authorization: Bearer KEY (or X-API-Key: KEY)")
        parts = split_key(given)
        record = self._record(parts[0]) if parts else None
        if parts is None or record is None or record.revoked_at is not None or not secret_matches(record, parts[1]):
            raise AuthenticationError("unknown or revoked API key")
        if not grants(record, scope):
            raise PermissionDeniedError(f"this key has the {record.scope!r} scope; this request needs {scope!r}")
        return record.id

    def _record(self, key_id: str) -> ApiKey | None:
        with self._lock:
            if key_id in self._verified:
                return self._verified[key_id]
        record = self._lookup()(key_id)
        with self._lock:
            self._verified[key_id] = record
        return record


def _presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None
