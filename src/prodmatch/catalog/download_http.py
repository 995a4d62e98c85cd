"""One HTTP hop of a download, judged: which responses and transport errors end a try, and how (a FetchFailure
says whether the URL is worth retrying), redirects, credentials, Retry-After."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from prodmatch.catalog.download_manifest import Status
from prodmatch.catalog.download_store import content_type_allowed, sniff_image

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# Worth retrying: the server or the path to it may recover (408 and 429 ask for it explicitly).
TRANSIENT_CODES = frozenset({408, 429})
_ERROR_TEXT_MAX = 300


class FetchFailure(Exception):
    """Why one try of one URL ended without an image; `transient` failures are retried."""

    def __init__(self, status: Status, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message[:_ERROR_TEXT_MAX])
        self.status = status
        self.kind = kind
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.status is Status.FAILED_TRANSIENT


def parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
        raise FetchFailure(Status.FAILED_PERMANENT, "invalid_url", f"invalid URL: {exc}") from None
    if not parsed.scheme:
        raise FetchFailure(Status.FAILED_PERMANENT, "invalid_url", "not an absolute URL")
    return parsed


def auth_header(first: httpx.URL, current: httpx.URL) -> dict[str, str]:
    """Basic credentials from the feed URL's userinfo, sent only to that URL's own origin (never after a
    redirect elsewhere)."""
    if not first.username or (first.scheme, first.raw_host, first.port) != (
        current.scheme,
        current.raw_host,
        current.port,
    ):
        return {}
    token = base64.b64encode(f"{first.username}:{first.password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def redirect_target(url: httpx.URL, response: httpx.Response) -> httpx.URL | None:
    if response.status_code not in REDIRECT_CODES:
        return None
    location = response.headers.get("location")
    if not location:
        raise FetchFailure(Status.FAILED_PERMANENT, "bad_redirect", f"HTTP {response.status_code} without Location")
    try:
        return url.join(location)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise FetchFailure(Status.FAILED_PERMANENT, "bad_redirect", f"invalid Location: {exc}") from None


def check_response(response: httpx.Response, max_bytes: int) -> None:
    """Refuse by status and headers before reading the body."""
    code = response.status_code
    if code in TRANSIENT_CODES or code >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise FetchFailure(Status.FAILED_TRANSIENT, f"http_{code}", f"HTTP {code}", retry_after)
    if code != 200:
        raise FetchFailure(Status.FAILED_PERMANENT, f"http_{code}", f"HTTP {code}")
    content_type = response.headers.get("content-type")
    if not content_type_allowed(content_type):
        raise FetchFailure(Status.REFUSED, "bad_content_type", f"content type {content_type!r} is not an image type")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise FetchFailure(Status.REFUSED, "too_large", f"Content-Length {length} exceeds {max_bytes} bytes")


def require_image(head: bytes) -> str:
    ext = sniff_image(head)
    if ext is None:
        raise FetchFailure(Status.REFUSED, "not_an_image", "body is not a JPEG, PNG, WebP or GIF image")
    return ext


def transport_failure(exc: httpx.HTTPError) -> FetchFailure:
    """Connection-level problems are transient; anything else httpx raises is not worth retrying."""
    kinds: tuple[tuple[type[httpx.HTTPError], str], ...] = (
        (httpx.ConnectTimeout, "connect_timeout"),
        (httpx.ReadTimeout, "read_timeout"),
        (httpx.TimeoutException, "timeout"),
        (httpx.ConnectError, "connect_error"),
        (httpx.ReadError, "connection_lost"),
        (httpx.WriteError, "connection_lost"),
        (httpx.RemoteProtocolError, "connection_lost"),
    )
    message = f"{type(exc).__name__}: {exc}"
    for exc_type, kind in kinds:
        if isinstance(exc, exc_type):
            return FetchFailure(Status.FAILED_TRANSIENT, kind, message)
    return FetchFailure(Status.FAILED_PERMANENT, "http_error", message)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None if absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HostSlots:
    """Per-host semaphores, created on demand and dropped when unused (a feed can name a million hosts)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        semaphore, users = self._slots.get(host, (asyncio.Semaphore(self._limit), 0))
        self._slots[host] = (semaphore, users + 1)
        try:
            async with semaphore:
                yield
        finally:
            semaphore, users = self._slots[host]
            if users == 1:
                del self._slots[host]
            else:
                self._slots[host] = (semaphore, users - 1)
