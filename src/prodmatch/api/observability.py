"""One ASGI middleware around every request: its id, its metrics, one structured log line, the security headers.

The log line (JSON, logger "prodmatch.access") holds the request id, method, route template, status, latency and
the API key's id — never the key, the uploaded bytes or the query string (it may hold filters a shop considers
private). A client's X-Request-ID is kept when it is a plain token, so a request can be followed from the client
through the query log; otherwise a fresh id is made. Both are returned in X-Request-ID.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodmatch.api.metrics import Metrics

access_log = logging.getLogger("prodmatch.access")
REQUEST_ID_HEADER = "x-request-id"
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# No inline script or style anywhere in the UI, so the policy can forbid both; images may be data:/blob: URLs
# (the photo preview before upload).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": CONTENT_SECURITY_POLICY,
}
# The OpenAPI docs page loads Swagger UI's script and styles (from FastAPI's default CDN); it keeps its own policy.
_DOCS_PATHS = ("/docs", "/redoc")


def request_id_of(scope: Scope) -> str:
    """The id RequestContext gave this request ("" outside a request)."""
    return str(scope.get("state", {}).get("request_id", ""))


class RequestContext:
    """Request id, metrics, access log and security headers for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                _secure(headers, scope["path"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._record(scope, status[0], time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path_format", "unmatched")  # the template ("{product_id}", no ":path")
        self.metrics.requests.labels(route, scope["method"], str(status)).inc()
        self.metrics.latency.labels(route, scope["method"]).observe(seconds)
        state: dict[str, Any] = scope.get("state", {})
        access_log.info(
            "request",
            extra={
                "request_id": state.get("request_id"),
                "method": scope["method"],
                "route": route,
                "status": status,
                "latency_ms": round(seconds * 1000, 2),
                "key_id": state.get("key_id"),
                "client": (scope.get("client") or ("", 0))[0],
            },
        )


def _request_id(scope: Scope) -> str:
    given = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
    return given if _PLAIN_ID.match(given) else uuid.uuid4().hex


def _secure(headers: MutableHeaders, path: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        if name == "content-security-policy" and path.startswith(_DOCS_PATHS):
            continue
        headers.setdefault(name, value)


def configure_logging(level: str, json_lines: bool = True) -> None:
    """Log records to stderr, one JSON object per line (or plain text), at LEVEL, for prodmatch and uvicorn."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True))
    for name in ("prodmatch", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
