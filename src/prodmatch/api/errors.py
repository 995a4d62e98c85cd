"""Every failure a client can cause becomes a 4xx with a JSON body {"error": {"code", "message"}}."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodmatch.errors import (
    AuthenticationError,
    FilterError,
    InvalidImageError,
    InvalidQueryError,
    InvalidTextError,
    ModelServerUnavailableError,
    ModelTimeoutError,
    ModelUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    ProdmatchError,
    RateLimitedError,
    StoreUnavailableError,
    UnknownProductError,
)
from prodmatch.stores.availability import unavailable_reason

_STATUS = [
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (RateLimitedError, 429, "rate_limited"),
    (ModelTimeoutError, 503, "model_timeout"),
    (NotFoundError, 404, "not_found"),
    (UnknownProductError, 422, "unknown_product"),
    (InvalidImageError, 400, "invalid_image"),
    (InvalidTextError, 400, "invalid_text"),
    (FilterError, 400, "invalid_filter"),
    (InvalidQueryError, 400, "invalid_query"),
    (ModelUnavailableError, 503, "model_unavailable"),
    (StoreUnavailableError, 503, "store_unavailable"),
    (ProdmatchError, 400, "bad_request"),
]


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _headers_for(exc: ProdmatchError) -> dict[str, str] | None:
    """Retry-After where the client may retry; how to authenticate where it must."""
    if isinstance(exc, RateLimitedError):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, StoreUnavailableError | ModelServerUnavailableError):
        return {"Retry-After": "1"}
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": "Bearer"}
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProdmatchError)
    async def prodmatch_error(_request: Request, exc: ProdmatchError) -> JSONResponse:
        status, code = next((s, c) for kind, s, c in _STATUS if isinstance(exc, kind))
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return JSONResponse(error_body(code, message), status_code=status, headers=_headers_for(exc))

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        """A database that went away mid-request is a 503 the client may retry; anything else is our bug (the
        server logs it; the client gets a 500 without internals)."""
        if (reason := unavailable_reason(exc)) is not None:
            return JSONResponse(error_body("store_unavailable", reason), status_code=503, headers={"Retry-After": "1"})
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        """Starlette's own refusals (no such route, wrong method) in the one error shape."""
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(error_body("invalid_request", "; ".join(problems)), status_code=422)


class BodySizeLimit:
    """Refuses request bodies over their route's limit with 413 while they stream in, before anything reads them
    whole. LIMIT_FOR maps (method, path) to the limit: photo uploads get megabytes, JSON bodies kilobytes.

    A body must also arrive within TIMEOUT_S: a client trickling bytes (or stalling half-way) would otherwise hold
    a connection and a request's memory for as long as it likes; it gets 408 and the connection is closed.
    Paths in DETAIL_PATHS (a design whose clients read `{"detail": ...}`, api/routes/compat.py) get that shape."""

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str, str], int],
        timeout_s: float = 30.0,
        detail_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.timeout_s = timeout_s
        self.detail_paths = detail_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        detail = scope["path"] in self.detail_paths
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, detail, 413, "too_large", f"request body over the limit of {limit} bytes")
            return
        seen = 0
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        # Why the body was cut off; set before raising, because FastAPI turns an exception while it reads a body
        # into its own 400, and that answer is swapped for the right one below.
        refused: list[tuple[int, str, str]] = []

        async def counted() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                refused.append((408, "too_slow", f"the request body did not arrive within {self.timeout_s:g} s"))
                raise _Refused from None
            seen += len(message.get("body", b""))
            if seen > limit:
                refused.append((413, "too_large", f"request body over the limit of {limit} bytes"))
                raise _Refused
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        with contextlib.suppress(_Refused):
            await self.app(scope, counted, unless_refused)
        if refused:
            await _refuse(send, detail, *refused[0])


async def _refuse(send: Send, detail: bool, status: int, code: str, message: str) -> None:
    headers = {"Connection": "close"} if status == 408 else None
    body = {"detail": message} if detail else error_body(code, message)
    response = JSONResponse(body, status_code=status, headers=headers)
    await response({"type": "http"}, _no_body, send)


class _Refused(Exception):
    pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
